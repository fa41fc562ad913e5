"""The OAuth consent flow's views (filled in by the consent issue)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect


def callback(request: HttpRequest) -> HttpResponse:
    """/RestAPI/WC/OAuthSetting: the redirect URI registered at Microsoft and Google."""
    return redirect("settings_app:mail_server")
