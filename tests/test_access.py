"""Who may reach what: every console URL needs login and the mail server permission."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse

from tests.factories import PAGE_URL, user_with_permission

pytestmark = pytest.mark.django_db

PUBLIC_PREFIXES = ("accounts/login/", "accounts/logout/", "django-admin/")


def routed_paths() -> list[str]:
    """Every routed path without parameters, Django's admin included."""
    paths = []

    def walk(patterns, prefix=""):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and "<" not in route and "(" not in route:
                paths.append("/" + route.lstrip("^").rstrip("$"))

    walk(get_resolver().url_patterns)
    return paths


def console_paths() -> list[str]:
    """Every routed path of the console (views added later are picked up automatically)."""
    return [p for p in routed_paths() if not p.lstrip("/").startswith(PUBLIC_PREFIXES)]


def test_the_page_has_the_documented_url():
    assert reverse("settings_app:mail_server") == PAGE_URL
    assert resolve(PAGE_URL).url_name == "mail_server"


def test_every_console_url_sends_anonymous_users_to_login(client):
    paths = console_paths()
    assert PAGE_URL in paths and "/RestAPI/WC/OAuthSetting" in paths
    for path in paths:
        for method in (client.get, client.post):
            response = method(path)
            assert response.status_code == 302, path
            assert response.url.startswith("/accounts/login/?next="), path


def test_signing_in_is_required_by_djangos_login_required_middleware(settings):
    middleware = settings.MIDDLEWARE
    login_required = middleware.index("django.contrib.auth.middleware.LoginRequiredMiddleware")
    assert login_required < middleware.index("settings_app.middleware.ConsoleAccessMiddleware")


def test_only_views_marked_login_not_required_are_reachable_anonymously(client):
    reachable = []
    for path in routed_paths():
        view = resolve(path).func
        response = client.get(path)
        if getattr(view, "login_required", True) is False:
            reachable.append(path)
            assert response.status_code == 200, path
        else:
            # Django's admin names its own sign-in page (login_url); everything else uses ours.
            login_url = str(getattr(view, "login_url", None) or "/accounts/login/")
            assert response.status_code == 302, path
            assert response.url.startswith(login_url + "?next="), path
    assert {"/accounts/login/", "/django-admin/login/"} <= set(reachable)


def test_every_console_url_refuses_users_without_the_permission(client):
    client.force_login(get_user_model().objects.create_user("viewer", password="pass-12345"))
    for path in console_paths():
        for method in (client.get, client.post):
            response = method(path)
            assert response.status_code == 403, path
            assert b"Can change mail server settings" in response.content


def test_a_group_can_grant_the_permission(client):
    client.force_login(user_with_permission())
    response = client.get(PAGE_URL)
    assert response.status_code == 200
    assert b"Mail Server" in response.content


def test_superusers_have_the_permission(admin_client):
    assert admin_client.get(PAGE_URL).status_code == 200


def test_the_login_page_is_styled_like_the_console(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b"Mail Console" in response.content and b"Sign in" in response.content


def test_logout_signs_out(admin_client):
    response = admin_client.post("/accounts/logout/")
    assert response.status_code == 302
    assert admin_client.get(PAGE_URL).status_code == 302


def test_django_admin_does_not_shadow_the_console():
    assert resolve(PAGE_URL).func.__module__ == "settings_app.views"
    assert resolve("/django-admin/").app_name == "admin"
