from django.urls import path

from . import email_log, email_log_export, retry_now, views
from .models import Connection

BACKUP = {"connection": Connection.BACKUP}

app_name = "settings_app"

urlpatterns = [
    path("mail-server/", views.mail_server, name="mail_server"),
    path("mail-server/test-mail/", views.test_mail, name="test_mail"),
    path("mail-server/check-permissions/", views.check_permissions, name="check_permissions"),
    # The backup connection: the same page, form and views for the second record.
    path("mail-server/backup/", views.mail_server, BACKUP, name="backup_connection"),
    path("mail-server/backup/test-mail/", views.test_mail, BACKUP, name="backup_test_mail"),
    path(
        "mail-server/backup/check-permissions/",
        views.check_permissions,
        BACKUP,
        name="backup_check_permissions",
    ),
    path(
        "mail-server/health-check/",
        views.save_health_check,
        name="save_health_check",
    ),
    path("mail-server/log/", email_log.email_log, name="email_log"),
    path("mail-server/log/export.csv", email_log_export.email_log_export, name="email_log_export"),
    path("mail-server/log/<int:pk>/", email_log.email_log_detail, name="email_log_detail"),
    path("mail-server/log/<int:pk>/resend/", email_log.email_log_resend, name="email_log_resend"),
    path("mail-server/incidents/<int:pk>/retry-now/", retry_now.retry_now, name="retry_now"),
]
