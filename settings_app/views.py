from django.http import HttpRequest, HttpResponse


def mail_server(request: HttpRequest) -> HttpResponse:
    return HttpResponse("todo")


def test_mail(request: HttpRequest) -> HttpResponse:
    return HttpResponse("todo")
