"""SMTP OAuth consent: both providers end to end through the fakes, state security, grant lifecycle."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from oauth.grant import StoredGrantTokenProvider, grant_state
from oauth.models import AuthorizationRequest, OAuthGrant
from oauth.state import BROWSER_COOKIE
from settings_app.errors import AuthenticationError
from settings_app.models import MailServerConfig
from settings_app.values import MailSettings
from tests.factories import PAGE_URL
from tests.oauth_helpers import (
    CALLBACK,
    G_USER,
    MS_USER,
    consent,
    google_post,
    local,
    microsoft_post,
    register_google,
    register_microsoft,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", password="pw-12345")
    client.force_login(user)
    return user


def start_microsoft(client, **overrides):
    response = client.post(PAGE_URL, microsoft_post(**overrides))
    assert response.status_code == 302, response.content[:500]
    return response["Location"]


def stored() -> MailSettings:
    return MailSettings.from_model(MailServerConfig.load())


def test_microsoft_save_goes_to_consent_with_pkce_and_query_mode(client, admin, microsoft_fake):
    register_microsoft(microsoft_fake)
    url = start_microsoft(client)
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert urlsplit(url).path == f"/{stored().oauth_tenant_id}/oauth2/v2.0/authorize"
    assert params["response_mode"] == "query"
    assert params["code_challenge_method"] == "S256" and params["code_challenge"]
    assert params["login_hint"] == MS_USER
    assert params["redirect_uri"] == CALLBACK
    scopes = params["scope"].split()
    assert "https://outlook.office.com/SMTP.Send" in scopes and "offline_access" in scopes


def test_microsoft_end_to_end(client, admin, microsoft_fake, ca_file):
    register_microsoft(microsoft_fake)
    back = consent(start_microsoft(client), ca_file)
    response = client.get(local(back), follow=True)
    assert b"Authorized as mailer@contoso.com" in response.content
    grant = OAuthGrant.objects.get()
    assert grant.account == MS_USER and grant.refresh_token
    assert grant_state(stored()).usable
    token = StoredGrantTokenProvider(stored()).get_token()
    assert microsoft_fake.token_is_valid(token.token, "SMTP.Send")


def test_microsoft_other_account_is_stored_with_a_warning(client, admin, microsoft_fake, ca_file):
    register_microsoft(microsoft_fake)
    microsoft_fake.next_consent_user = "someone.else@contoso.com"
    back = consent(start_microsoft(client, username="nobody@contoso.com"), ca_file)
    response = client.get(local(back), follow=True)
    assert OAuthGrant.objects.get().account == "someone.else@contoso.com"
    assert b"Mail will be sent as someone.else@contoso.com" in response.content


def test_google_configure_end_to_end(client, admin, google_fake, ca_file):
    register_google(google_fake)
    google_fake.next_consent_user = G_USER
    response = client.post(PAGE_URL, google_post(after_save="authorize"))
    params = {k: v[0] for k, v in parse_qs(urlsplit(response["Location"]).query).items()}
    assert params["access_type"] == "offline" and params["prompt"] == "consent"
    assert "https://mail.google.com/" in params["scope"].split()
    assert params["code_challenge_method"] == "S256"
    back = consent(response["Location"], ca_file)
    page = client.get(local(back), follow=True)
    assert b"Authorized as mailer@example.org" in page.content
    assert OAuthGrant.objects.get().account == G_USER
    token = StoredGrantTokenProvider(stored()).get_token()
    assert google_fake.token_is_valid(token.token, "https://mail.google.com/")


def test_google_from_address_other_than_account_warns(client, admin, google_fake, ca_file):
    register_google(google_fake)
    google_fake.next_consent_user = "other@example.org"
    response = client.post(PAGE_URL, google_post(after_save="authorize"))
    page = client.get(local(consent(response["Location"], ca_file)), follow=True)
    assert b"verified aliases" in page.content


@pytest.mark.parametrize(
    ("error", "description", "code"),
    [
        (
            "access_denied",
            "AADSTS65004: User declined to consent to access the app.",
            "AADSTS65004",
        ),
        ("invalid_request", "AADSTS50011: The redirect URI does not match.", "AADSTS50011"),
        ("invalid_client", "AADSTS700016: Application not found.", "AADSTS700016"),
        (
            "consent_required",
            "AADSTS65001: The user or administrator has not consented.",
            "AADSTS65001",
        ),
    ],
)
def test_microsoft_error_callbacks_explained_and_nothing_stored(
    client, admin, microsoft_fake, ca_file, error, description, code
):
    register_microsoft(microsoft_fake)
    microsoft_fake.consent_error = (error, description)
    response = client.get(local(consent(start_microsoft(client), ca_file)))
    assert response.status_code == 400
    assert code.encode() in response.content
    assert b"Try again" in response.content
    assert not OAuthGrant.objects.exists()


def test_error_after_the_provider_changed_is_explained_by_the_consents_provider(
    client, admin, microsoft_fake, ca_file
):
    register_microsoft(microsoft_fake)
    microsoft_fake.consent_error = (
        "access_denied",
        "AADSTS65004: User declined to consent to access the app.",
    )
    url = local(consent(start_microsoft(client), ca_file))
    client.post(PAGE_URL, google_post(after_save=""))  # saved as Google meanwhile
    assert stored().oauth_provider == "google"
    response = client.get(url)
    # Microsoft's refusal in Microsoft's words, not Google's table nor "settings changed".
    assert response.status_code == 400
    assert b"AADSTS65004" in response.content
    assert b"The consent was declined." in response.content
    assert b"declined at Google" not in response.content
    assert not OAuthGrant.objects.exists()


def test_redirect_mismatch_hint_names_the_uri(client, admin, microsoft_fake, ca_file):
    register_microsoft(microsoft_fake)
    microsoft_fake.consent_error = ("invalid_request", "AADSTS50011: redirect URI mismatch")
    response = client.get(local(consent(start_microsoft(client), ca_file)))
    assert CALLBACK.encode() in response.content


@pytest.mark.parametrize(
    ("error", "fragment"),
    [
        ("redirect_uri_mismatch", b"Authorized redirect URIs"),
        ("invalid_client", b"Client ID"),
        ("access_denied", b"declined"),
    ],
)
def test_google_error_callbacks(client, admin, google_fake, ca_file, error, fragment):
    register_google(google_fake)
    google_fake.consent_error = (error, "")
    response = client.post(PAGE_URL, google_post(after_save="authorize"))
    page = client.get(local(consent(response["Location"], ca_file)))
    assert page.status_code == 400 and fragment in page.content
    assert not OAuthGrant.objects.exists()


def callback_url(client, microsoft_fake, ca_file) -> str:
    register_microsoft(microsoft_fake)
    return local(consent(start_microsoft(client), ca_file))


def test_forged_state_refused(client, admin, microsoft_fake, ca_file):
    url = callback_url(client, microsoft_fake, ca_file)
    forged = url.replace("state=", "state=x")
    response = client.get(forged)
    assert response.status_code == 400 and b"not started here" in response.content
    assert not OAuthGrant.objects.exists()


def test_replayed_state_refused(client, admin, microsoft_fake, ca_file):
    url = callback_url(client, microsoft_fake, ca_file)
    assert client.get(url).status_code == 302
    OAuthGrant.objects.all().delete()
    response = client.get(url)
    assert response.status_code == 400 and b"already used" in response.content
    assert not OAuthGrant.objects.exists()


def test_expired_state_refused(client, admin, microsoft_fake, ca_file):
    url = callback_url(client, microsoft_fake, ca_file)
    AuthorizationRequest.objects.update(created_at=timezone.now() - timedelta(minutes=11))
    response = client.get(url)
    assert response.status_code == 400 and b"10 minutes" in response.content


def test_other_users_state_refused(client, admin, microsoft_fake, ca_file):
    url = callback_url(client, microsoft_fake, ca_file)
    other = get_user_model().objects.create_superuser("other", password="pw-12345")
    client.force_login(other)
    response = client.get(url)
    assert response.status_code == 400 and b"another administrator" in response.content


def test_other_browser_refused(client, admin, microsoft_fake, ca_file):
    url = callback_url(client, microsoft_fake, ca_file)
    client.cookies[BROWSER_COOKIE] = "another-browser"
    response = client.get(url)
    assert response.status_code == 400 and b"another browser" in response.content


def test_callback_without_login_resumes_after_login(
    client, admin, microsoft_fake, ca_file, settings
):
    url = callback_url(client, microsoft_fake, ca_file)
    # The session expired while the admin was at the provider (the browser keeps its other cookies).
    del client.cookies[settings.SESSION_COOKIE_NAME]
    response = client.get(url)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    login_page = response["Location"]
    response = client.post(login_page, {"username": "root", "password": "pw-12345"})
    assert response["Location"] == url  # the callback URL survived the login redirect
    assert client.get(response["Location"]).status_code == 302
    assert OAuthGrant.objects.get().account == MS_USER


def test_settings_saved_during_consent_refuses_the_grant(client, admin, microsoft_fake, ca_file):
    url = callback_url(client, microsoft_fake, ca_file)
    client.post(PAGE_URL, microsoft_post(admin_address="new@contoso.com", after_save=""))
    response = client.get(url)
    assert response.status_code == 409 and b"settings changed" in response.content
    assert not OAuthGrant.objects.exists()


def authorize_microsoft(client, microsoft_fake, ca_file) -> None:
    assert client.get(callback_url(client, microsoft_fake, ca_file)).status_code == 302


def test_rotated_refresh_token_is_stored(client, admin, microsoft_fake, ca_file):
    authorize_microsoft(client, microsoft_fake, ca_file)
    first = OAuthGrant.objects.get().refresh_token
    StoredGrantTokenProvider(stored()).get_token(force=True)
    assert OAuthGrant.objects.get().refresh_token != first


def test_access_token_cached_until_expiry(client, admin, microsoft_fake, ca_file):
    authorize_microsoft(client, microsoft_fake, ca_file)
    for _ in range(3):
        StoredGrantTokenProvider(stored()).get_token()
    assert microsoft_fake.tokens_issued["refresh_token"] == 0  # the code redemption's token is used


def test_invalid_grant_marks_expired(client, admin, microsoft_fake, ca_file):
    authorize_microsoft(client, microsoft_fake, ca_file)
    microsoft_fake.revoke_refresh_tokens()
    with pytest.raises(AuthenticationError) as caught:
        StoredGrantTokenProvider(stored()).get_token(force=True)
    assert caught.value.message == "Authorization expired - Reconnect."
    assert "AADSTS700082" in OAuthGrant.objects.get().status_reason
    assert b"Authorization expired - Reconnect" in client.get(PAGE_URL).content


def test_check_action(client, admin, microsoft_fake, ca_file):
    authorize_microsoft(client, microsoft_fake, ca_file)
    page = client.post("/admin/general-settings/mail-server/oauth/check/", follow=True)
    assert b"Check passed" in page.content
    assert microsoft_fake.tokens_issued["refresh_token"] == 1


def test_disconnect_google_revokes(client, admin, google_fake, ca_file):
    register_google(google_fake)
    google_fake.next_consent_user = G_USER
    response = client.post(PAGE_URL, google_post(after_save="authorize"))
    client.get(local(consent(response["Location"], ca_file)))
    refresh_token = OAuthGrant.objects.get().refresh_token
    page = client.post("/admin/general-settings/mail-server/oauth/disconnect/", follow=True)
    assert b"Disconnected" in page.content
    assert not OAuthGrant.objects.exists()
    assert google_fake.revoked == [refresh_token]


def test_canary_refresh_token_never_leaks(client, admin, microsoft_fake, ca_file, caplog, settings):
    caplog.set_level(logging.DEBUG)
    authorize_microsoft(client, microsoft_fake, ca_file)
    grant = OAuthGrant.objects.get()
    grant.refresh_token = "CANARY-refresh-token-42"
    grant.save()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM oauth_oauthgrant")
        assert "CANARY" not in repr(cursor.fetchall())
    if connection.vendor == "sqlite":
        assert b"CANARY" not in Path(connection.settings_dict["NAME"]).read_bytes()
    assert b"CANARY" not in client.get(PAGE_URL).content
    assert "CANARY" not in caplog.text
