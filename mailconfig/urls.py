"""URLs: the console under Admin > General Settings, the OAuth callback path admins
register at the providers, login/logout, and Django's own admin out of the way."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from settings_app.forms import LoginForm

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="settings_app:mail_server"), name="home"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            authentication_form=LoginForm, redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/general-settings/", include("settings_app.urls")),
    path("", include("oauth.urls")),
    # Users and groups (who may change mail settings) are managed here, not under /admin/,
    # so Django's admin catch-all can never shadow the console's URLs.
    path("django-admin/", admin.site.urls),
]

# A database fault (read-only, locked, missing file) gets a page saying so, not a bare 500.
handler500 = "settings_app.database_faults.server_error"
