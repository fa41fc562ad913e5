from django.urls import path

from . import views

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
]
