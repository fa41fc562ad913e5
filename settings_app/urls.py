from django.urls import path

from . import email_log, views

app_name = "settings_app"

urlpatterns = [
    path("mail-server/", views.mail_server, name="mail_server"),
    path("mail-server/test-mail/", views.test_mail, name="test_mail"),
    path("mail-server/check-permissions/", views.check_permissions, name="check_permissions"),
    path("mail-server/log/", email_log.email_log, name="email_log"),
    path("mail-server/log/<int:pk>/", email_log.email_log_detail, name="email_log_detail"),
    path("mail-server/log/<int:pk>/resend/", email_log.email_log_resend, name="email_log_resend"),
]
