"""URLs: the console under Admin > General Settings, the OAuth callback path admins
register at the providers, login/logout, and Django's own admin out of the way."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="settings_app:mail_server"), name="home"),
    # Sign-in and sign-out, with the console's form (the project imports no app module).
    path("accounts/", include("settings_app.account_urls")),
    path("admin/general-settings/", include("settings_app.urls")),
    path("", include("oauth.urls")),
    # Users and groups (who may change mail settings) are managed here, not under /admin/,
    # so Django's admin catch-all can never shadow the console's URLs.
    path("django-admin/", admin.site.urls),
]

# A database fault (read-only, locked, missing file) gets a page saying so, not a bare 500.
handler500 = "settings_app.database_faults.server_error"
