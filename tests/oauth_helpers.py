"""Driving the consent flow in tests: save OAuth settings, follow the fake provider's redirect."""

from __future__ import annotations

from urllib.parse import urlsplit

from settings_app.http import VerifiedSession
from tests.factories import smtp_basic_post

MS_TENANT = "7a1b2c3d-1111-4222-8333-444455556666"
MS_CLIENT = "0c1d2e3f-aaaa-4bbb-8ccc-ddddeeeeffff"
MS_SECRET = "ms-client-secret"
MS_USER = "mailer@contoso.com"
G_CLIENT = "123-abc.apps.googleusercontent.com"
G_SECRET = "google-client-secret"
G_USER = "mailer@example.org"
CALLBACK = "http://testserver/RestAPI/WC/OAuthSetting"


def microsoft_post(server_port: int = 587, **overrides) -> dict:
    values = {
        "server_name": "localhost",
        "port": str(server_port),
        "auth": "oauth",
        "oauth_provider": "microsoft",
        "username": MS_USER,
        "password": "",
        "from_address": MS_USER,
        "oauth_tenant_id": MS_TENANT,
        "oauth_client_id": MS_CLIENT,
        "oauth_client_secret": MS_SECRET,
    }
    return smtp_basic_post(**(values | overrides))


def google_post(server_port: int = 587, **overrides) -> dict:
    values = {
        "server_name": "localhost",
        "port": str(server_port),
        "auth": "oauth",
        "oauth_provider": "google",
        "username": G_USER,
        "password": "",
        "from_address": G_USER,
        "google_client_id": G_CLIENT,
        "google_client_secret": G_SECRET,
    }
    return smtp_basic_post(**(values | overrides))


def register_microsoft(fake, redirect_uri: str = CALLBACK) -> None:
    fake.add_app(MS_TENANT, MS_CLIENT, MS_SECRET, redirect_uris=(redirect_uri,))
    fake.add_user(MS_TENANT, MS_USER)


def register_google(fake, redirect_uri: str = CALLBACK) -> None:
    fake.add_client(G_CLIENT, G_SECRET, (redirect_uri,))


def consent(authorize_url: str, ca_file: str) -> str:
    """What the admin's browser does at the provider: returns where it is sent back."""
    response = VerifiedSession(ca_file, 5).get(authorize_url, allow_redirects=False)
    if response.status_code != 302:
        raise AssertionError(f"provider answered {response.status_code}: {response.text[:200]}")
    return response.headers["Location"]


def local(url: str) -> str:
    """The path and query of a callback URL, for Django's test client."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"
