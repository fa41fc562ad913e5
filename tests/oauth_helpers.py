"""Driving the consent flow in tests: save OAuth settings, follow the fake provider's redirect."""

from __future__ import annotations

from urllib.parse import urlsplit

import requests

from oauth.models import OAuthGrant
from settings_app.models import MailServerConfig
from settings_app.values import MailSettings
from tests.factories import PAGE_URL, smtp_basic_post

MS_TENANT = "7a1b2c3d-1111-4222-8333-444455556666"
MS_CLIENT = "0c1d2e3f-aaaa-4bbb-8ccc-ddddeeeeffff"
MS_SECRET = "ms-client-secret"
MS_USER = "mailer@contoso.com"
G_CLIENT = "123-abc.apps.googleusercontent.com"
G_SECRET = "google-client-secret"
G_USER = "mailer@example.org"
CALLBACK = "http://testserver/RestAPI/WC/OAuthSetting"
CHECK_URL = PAGE_URL + "oauth/check/"
DISCONNECT_URL = PAGE_URL + "oauth/disconnect/"
START_URL = PAGE_URL + "oauth/authorize/"


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


def save_microsoft_oauth_row(**fields) -> None:
    """Microsoft SMTP OAuth settings for MS_TENANT's app, written to the row (no form)."""
    MailServerConfig.ensure_row()
    MailServerConfig.objects.filter(pk=MailServerConfig.SINGLETON_ID).update(
        mode="smtp",
        auth="oauth",
        oauth_provider="microsoft",
        oauth_tenant_id=MS_TENANT,
        oauth_client_id=MS_CLIENT,
        version=1,
        **fields,
    )
    config = MailServerConfig.load()
    config.oauth_client_secret = MS_SECRET
    config.save()


def xoauth2_server(smtp_server_factory, fake, user: str, scope: str):
    """A STARTTLS SMTP server taking XOAUTH2 only as ``user``, with a token ``fake`` issued
    for ``scope`` (SMTP.Send at Microsoft, https://mail.google.com/ at Google)."""
    return smtp_server_factory(
        security="starttls",
        token_checker=lambda login, token: login == user and fake.token_is_valid(token, scope),
    )


def register_google(fake, redirect_uri: str = CALLBACK) -> None:
    fake.add_client(G_CLIENT, G_SECRET, (redirect_uri,))


def consent(authorize_url: str, ca_file: str) -> str:
    """What the admin's browser does at the provider: returns where it is sent back."""
    # A browser, not a provider call: the sender's session would refuse the redirect.
    response = requests.get(authorize_url, verify=ca_file, allow_redirects=False, timeout=5)
    if response.status_code != 302:
        raise AssertionError(f"provider answered {response.status_code}: {response.text[:200]}")
    return response.headers["Location"]


def local(url: str) -> str:
    """The path and query of a callback URL, for Django's test client."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def stored() -> MailSettings:
    """The saved settings, as the sender sees them."""
    return MailSettings.from_model(MailServerConfig.load())


def start_consent(client, post: dict) -> str:
    """Save the form and return the provider's authorization URL the page redirects to."""
    response = client.post(PAGE_URL, post | {"after_save": "authorize"})
    assert response.status_code == 302, response.content[:500]
    return response["Location"]


def authorize_microsoft(client, fake, ca_file: str, **overrides) -> OAuthGrant:
    """Save Microsoft OAuth settings and consent at the fake: the stored grant."""
    register_microsoft(fake)
    back = consent(start_consent(client, microsoft_post(**overrides)), ca_file)
    assert client.get(local(back)).status_code == 302
    return OAuthGrant.objects.get()


def authorize_google(client, fake, ca_file: str, user: str = G_USER, **overrides) -> OAuthGrant:
    """Save Google OAuth settings and consent at the fake as ``user``: the stored grant."""
    register_google(fake)
    fake.next_consent_user = user
    back = consent(start_consent(client, google_post(**overrides)), ca_file)
    assert client.get(local(back)).status_code == 302
    return OAuthGrant.objects.get()
