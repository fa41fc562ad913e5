"""SMTP OAuth consent: both providers end to end through the fakes, errors, state security."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from oauth.grant import StoredGrantTokenProvider, grant_state
from oauth.models import AuthorizationRequest, OAuthGrant
from oauth.state import BROWSER_COOKIE
from settings_app.models import AuditEntry
from tests.factories import PAGE_URL
from tests.oauth_helpers import (
    CALLBACK,
    G_USER,
    MS_TENANT,
    MS_USER,
    authorize_google,
    authorize_microsoft,
    consent,
    google_post,
    local,
    microsoft_post,
    register_google,
    register_microsoft,
    start_consent,
    stored,
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


def test_us_government_consent_uses_its_authority_and_smtp_scope(
    client, admin, microsoft_fake, ca_file, settings
):
    # The fake also answers as "localhost": that name stands for this cloud's authority.
    authority = f"https://localhost:{microsoft_fake.port}"
    clouds = settings.MAILCONFIG_AZURE_ENVIRONMENTS
    us_gov = {**clouds["azure_us_government"], "authority_host": authority}
    settings.MAILCONFIG_AZURE_ENVIRONMENTS = {**clouds, "azure_us_government": us_gov}
    microsoft_fake.endpoints_on_request_host = True
    register_microsoft(microsoft_fake)
    url = start_microsoft(client, oauth_azure_environment="azure_us_government")
    assert url.startswith(f"{authority}/{MS_TENANT}/oauth2/v2.0/authorize?")
    scopes = parse_qs(urlsplit(url).query)["scope"][0].split()
    assert "https://outlook.office365.us/SMTP.Send" in scopes
    assert "https://outlook.office.com/SMTP.Send" not in scopes
    assert client.get(local(consent(url, ca_file))).status_code == 302
    token = StoredGrantTokenProvider(stored()).get_token(force=True)
    assert microsoft_fake.token_is_valid(token.token, "https://outlook.office365.us/SMTP.Send")


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


def grant_row() -> dict[str, Any]:
    return dict(OAuthGrant.objects.values().get())


@pytest.mark.parametrize(
    ("error", "description", "fix"),
    [
        (
            "invalid_request",
            "AADSTS50011: The redirect URI specified in the request does not match.",
            f"Add exactly {CALLBACK} under Authentication &gt; Web &gt; Redirect URIs",
        ),
        (
            "consent_required",
            "AADSTS65001: The user or administrator has not consented to use the application.",
            "choose &#x27;Grant admin consent&#x27;",
        ),
        (
            "unauthorized_client",
            "AADSTS700016: Application with identifier was not found in the directory.",
            "Check the Client ID (Application (client) ID",
        ),
        ("access_denied", "", "accept the requested permissions, or ask an administrator"),
    ],
    ids=["AADSTS50011", "AADSTS65001", "AADSTS700016", "access_denied"],
)
def test_microsoft_error_callback_leaves_the_existing_grant(
    client, admin, microsoft_fake, ca_file, error, description, fix
):
    authorize_microsoft(client, microsoft_fake, ca_file)
    before = grant_row()
    microsoft_fake.consent_error = (error, description)
    response = client.get(local(consent(start_consent(client, microsoft_post()), ca_file)))
    assert response.status_code == 400
    assert fix in response.content.decode()
    assert grant_row() == before


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        ("redirect_uri_mismatch", f"Add exactly {CALLBACK} to the client&#x27;s Authorized"),
        ("invalid_client", "Copy both again from Google Cloud console"),
    ],
)
def test_google_error_callback_leaves_the_existing_grant(
    client, admin, google_fake, ca_file, error, fix
):
    authorize_google(client, google_fake, ca_file)
    before = grant_row()
    google_fake.consent_error = (error, "")
    response = client.get(local(consent(start_consent(client, google_post()), ca_file)))
    assert response.status_code == 400
    assert fix in response.content.decode()
    assert grant_row() == before


def assert_nothing_stored() -> None:
    assert not OAuthGrant.objects.exists()
    assert not AuditEntry.objects.filter(action__startswith="Authorized OAuth").exists()


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
    assert_nothing_stored()


def test_other_users_state_refused(client, admin, microsoft_fake, ca_file):
    url = callback_url(client, microsoft_fake, ca_file)
    other = get_user_model().objects.create_superuser("other", password="pw-12345")
    client.force_login(other)
    response = client.get(url)
    assert response.status_code == 400 and b"another administrator" in response.content
    assert_nothing_stored()


def test_other_browser_refused(client, admin, microsoft_fake, ca_file):
    url = callback_url(client, microsoft_fake, ca_file)
    client.cookies[BROWSER_COOKIE] = "another-browser"
    response = client.get(url)
    assert response.status_code == 400 and b"another browser" in response.content
    assert_nothing_stored()


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
