from django.urls import path

from . import views

app_name = "settings_app"

urlpatterns = [
    path("mail-server/", views.mail_server, name="mail_server"),
    path("mail-server/test-mail/", views.test_mail, name="test_mail"),
    path("mail-server/check-permissions/", views.check_permissions, name="check_permissions"),
]
