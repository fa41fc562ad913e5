from django.urls import path

from settings_app.models import Connection

from . import views

BACKUP = {"connection": Connection.BACKUP}

app_name = "oauth"

urlpatterns = [
    # The redirect URI admins register at Microsoft and Google (the product's path).
    path("RestAPI/WC/OAuthSetting", views.callback, name="callback"),
    # Actions of the Mail Server page's OAuth panel.
    path("admin/general-settings/mail-server/oauth/authorize/", views.start, name="start"),
    path("admin/general-settings/mail-server/oauth/check/", views.check, name="check"),
    path(
        "admin/general-settings/mail-server/oauth/disconnect/", views.disconnect, name="disconnect"
    ),
    # The same actions on the Backup Connection page, for the backup's own grant.
    path(
        "admin/general-settings/mail-server/backup/oauth/authorize/",
        views.start,
        BACKUP,
        name="backup_start",
    ),
    path(
        "admin/general-settings/mail-server/backup/oauth/check/",
        views.check,
        BACKUP,
        name="backup_check",
    ),
    path(
        "admin/general-settings/mail-server/backup/oauth/disconnect/",
        views.disconnect,
        BACKUP,
        name="backup_disconnect",
    ),
]
