"""The stored SMTP OAuth grant over its life: Disconnect, tokens across processes, refresh."""

from __future__ import annotations

import gc
import time
from datetime import timedelta

import pytest
from django.core.mail import get_connection, send_mail
from django.utils import timezone

from oauth.consent import grant_fingerprint
from oauth.grant import StoredGrantTokenProvider, grant_state
from oauth.models import GrantStatus, OAuthGrant
from sender.errors import AuthenticationError, ConfigurationError
from tests.factories import PAGE_URL
from tests.oauth_helpers import (
    CHECK_URL,
    DISCONNECT_URL,
    G_CLIENT,
    G_SECRET,
    G_USER,
    MS_CLIENT,
    MS_SECRET,
    MS_TENANT,
    MS_USER,
    authorize_google,
    authorize_microsoft,
    google_post,
    microsoft_post,
    register_microsoft,
    start_consent,
    stored,
    xoauth2_server,
)

pytestmark = pytest.mark.django_db
BACKEND = "sender.backend.EmailBackend"


def send_test_message() -> int:
    """Send through the stored settings, as the product's own mail does."""
    return send_mail(
        "Subject",
        "Body",
        None,
        ["admin@example.com"],
        connection=get_connection(BACKEND, immediate=True),  # sent now, not queued
    )


def test_rotated_refresh_token_is_stored(admin_client, microsoft_fake, ca_file):
    first = authorize_microsoft(admin_client, microsoft_fake, ca_file).refresh_token
    StoredGrantTokenProvider(stored()).get_token(force=True)
    assert OAuthGrant.objects.get().refresh_token != first


def test_google_rotated_refresh_token_is_stored(admin_client, google_fake, ca_file):
    first = authorize_google(admin_client, google_fake, ca_file).refresh_token
    google_fake.rotate_refresh_tokens = True
    StoredGrantTokenProvider(stored()).get_token(force=True)
    rotated = OAuthGrant.objects.get().refresh_token
    assert rotated != first
    assert rotated in google_fake.refresh_tokens and first not in google_fake.refresh_tokens


def test_access_token_cached_until_expiry(admin_client, microsoft_fake, ca_file):
    authorize_microsoft(admin_client, microsoft_fake, ca_file)
    for _ in range(3):
        StoredGrantTokenProvider(stored()).get_token()
    assert microsoft_fake.tokens_issued["refresh_token"] == 0  # the code redemption's token is used


def test_invalid_grant_marks_expired(admin_client, microsoft_fake, ca_file):
    authorize_microsoft(admin_client, microsoft_fake, ca_file)
    microsoft_fake.revoke_refresh_tokens()
    with pytest.raises(AuthenticationError) as caught:
        StoredGrantTokenProvider(stored()).get_token(force=True)
    assert caught.value.message == "Authorization expired - Reconnect."
    assert "AADSTS700082" in OAuthGrant.objects.get().status_reason
    assert b"Authorization expired - Reconnect" in admin_client.get(PAGE_URL).content


def test_google_invalid_grant_asks_to_reconnect_with_googles_reason(
    admin_client, google_fake, ca_file
):
    authorize_google(admin_client, google_fake, ca_file)
    google_fake.refresh_tokens.clear()  # the user removed the app's access at Google
    with pytest.raises(AuthenticationError) as caught:
        StoredGrantTokenProvider(stored()).get_token(force=True)
    assert caught.value.message == "Authorization expired - Reconnect."
    page = admin_client.get(PAGE_URL).content.decode()
    assert "Authorization expired - Reconnect." in page
    assert "Provider's reason: Token has been expired or revoked." in page
    assert 'data-testid="configure">Save and Reconnect' in page


def test_check_passes(admin_client, microsoft_fake, ca_file):
    authorize_microsoft(admin_client, microsoft_fake, ca_file)
    page = admin_client.post(CHECK_URL, follow=True)
    assert b"Check passed: a new access token was issued for mailer@contoso.com" in page.content
    assert microsoft_fake.tokens_issued["refresh_token"] == 1


def test_check_failure_is_explained_on_the_page(admin_client, microsoft_fake, ca_file):
    authorize_microsoft(admin_client, microsoft_fake, ca_file)
    microsoft_fake.revoke_refresh_tokens()
    page = admin_client.post(CHECK_URL, follow=True).content.decode()
    assert "Check failed: Authorization expired - Reconnect." in page
    assert "The authorization expired after 90 days without use." in page
    assert "press Reconnect to authorize again" in page


def test_panel_offers_reconnect_check_and_disconnect_for_google(admin_client, google_fake, ca_file):
    page = admin_client.get(PAGE_URL).content.decode()
    assert 'data-testid="configure">Configure' in page
    authorize_google(admin_client, google_fake, ca_file)
    page = admin_client.get(PAGE_URL).content.decode()
    assert 'data-testid="configure">Save and Reconnect' in page
    assert 'data-testid="check"' in page and 'data-testid="disconnect"' in page


def test_panel_offers_reconnect_check_and_disconnect_for_microsoft(
    admin_client, microsoft_fake, ca_file
):
    authorize_microsoft(admin_client, microsoft_fake, ca_file)
    page = admin_client.get(PAGE_URL).content.decode()
    assert "Save and Reconnect</button>" in page
    assert 'data-testid="configure">Configure' in page  # Google would be a first consent
    assert 'data-testid="check"' in page and 'data-testid="disconnect"' in page


def test_disconnect_google_revokes(admin_client, google_fake, ca_file):
    refresh_token = authorize_google(admin_client, google_fake, ca_file).refresh_token
    page = admin_client.post(DISCONNECT_URL, follow=True)
    assert b"Disconnected" in page.content
    assert not OAuthGrant.objects.exists()
    assert google_fake.revoked == [refresh_token]


def test_disconnect_revokes_a_google_grant_after_the_provider_changed(
    admin_client, google_fake, microsoft_fake, ca_file
):
    refresh_token = authorize_google(admin_client, google_fake, ca_file).refresh_token
    register_microsoft(microsoft_fake)
    start_consent(admin_client, microsoft_post())  # the settings are Microsoft's now
    assert stored().oauth_provider == "microsoft"
    page = admin_client.post(DISCONNECT_URL, follow=True)
    assert b"Disconnected" in page.content
    assert not OAuthGrant.objects.exists()
    assert google_fake.revoked == [refresh_token]


def test_disconnect_does_not_wait_for_a_slow_google(admin_client, google_fake, ca_file, settings):
    authorize_google(admin_client, google_fake, ca_file)
    settings.MAILCONFIG_TIMEOUT = 0.5
    google_fake.delays["revoke"] = 3
    began = time.monotonic()
    page = admin_client.post(DISCONNECT_URL, follow=True)
    assert time.monotonic() - began < 2.5  # the revocation timed out; Disconnect went on
    assert b"Disconnected" in page.content
    assert not OAuthGrant.objects.exists()


def replace_grant_as_another_process_would(microsoft_fake, account: str) -> str:
    """Store a grant for ``account`` the way another process's consent does; its access token."""
    tokens = microsoft_fake.issue_user_tokens(
        MS_TENANT, MS_CLIENT, account, "https://outlook.office.com/SMTP.Send offline_access"
    )
    OAuthGrant.objects.update_or_create(
        pk=OAuthGrant.SINGLETON_ID,
        defaults={
            "provider": "microsoft",
            "account": account,
            "refresh_token": tokens["refresh_token"],
            "access_token": tokens["access_token"],
            "access_token_expires_at": timezone.now() + timedelta(hours=1),
            "credentials_fingerprint": grant_fingerprint(stored()),
            "authorized_at": timezone.now(),
        },
    )
    return tokens["access_token"]


def test_cached_token_is_reused_at_the_cost_of_one_query(
    admin_client, microsoft_fake, ca_file, django_assert_num_queries
):
    authorize_microsoft(admin_client, microsoft_fake, ca_file)
    config = stored()
    first = StoredGrantTokenProvider(config).get_token()
    with django_assert_num_queries(1):  # the grant's status, read anyway
        again = StoredGrantTokenProvider(config).get_token()
    assert again == first


def test_a_grant_replaced_by_another_process_is_used_at_once(admin_client, microsoft_fake, ca_file):
    authorize_microsoft(admin_client, microsoft_fake, ca_file)
    old = StoredGrantTokenProvider(stored()).get_token()
    assert old.account == MS_USER  # now cached in this process
    new_access_token = replace_grant_as_another_process_would(
        microsoft_fake, "second.mailer@contoso.com"
    )
    token = StoredGrantTokenProvider(stored()).get_token()
    assert token.account == "second.mailer@contoso.com"
    assert token.token == new_access_token != old.token


# Every field of GRANT_FIELDS (oauth/consent.py), changed on the form.
MICROSOFT_CHANGES = {
    "provider": {
        "oauth_provider": "google",
        "google_client_id": G_CLIENT,
        "google_client_secret": G_SECRET,
    },
    "tenant": {"oauth_tenant_id": "9f8e7d6c-2222-4333-8444-555566667777"},
    "client ID": {"oauth_client_id": "1a2b3c4d-bbbb-4ccc-8ddd-eeeeffff0000"},
    "client secret": {"oauth_client_secret": "rotated-secret"},
    "Azure environment": {"oauth_azure_environment": "azure_us_government"},
    "username": {"username": "other.mailer@contoso.com"},
    # The grant's tokens go only to the SMTP server it was authorized for (port: below).
    "server": {"server_name": "127.0.0.1"},
    "security": {"security": "none"},
}
GOOGLE_CHANGES = {
    "provider": {
        "oauth_provider": "microsoft",
        "oauth_tenant_id": MS_TENANT,
        "oauth_client_id": MS_CLIENT,
        "oauth_client_secret": MS_SECRET,
    },
    "client ID": {"google_client_id": "456-def.apps.googleusercontent.com"},
    "client secret": {"google_client_secret": "rotated-google-secret"},
    "server": {"server_name": "127.0.0.1"},
    "security": {"security": "none"},
}


def assert_authorization_needed(client) -> None:
    assert grant_state(stored()).status == "changed"
    assert b"Authorization needed" in client.get(PAGE_URL).content
    with pytest.raises(ConfigurationError) as caught:
        send_test_message()
    assert caught.value.message == (
        "Authorization needed: the OAuth settings changed since the authorization."
    )
    assert "press Authorize" in caught.value.hint


@pytest.mark.parametrize("change", MICROSOFT_CHANGES.values(), ids=MICROSOFT_CHANGES.keys())
def test_changing_a_microsoft_grant_field_needs_authorization(
    admin_client, microsoft_fake, ca_file, smtp_starttls, change
):
    authorize_microsoft(admin_client, microsoft_fake, ca_file, server_port=smtp_starttls.port)
    before = stored().version
    admin_client.post(PAGE_URL, microsoft_post(smtp_starttls.port, **change))
    assert stored().version == before + 1
    assert_authorization_needed(admin_client)


def test_another_port_needs_authorization(
    admin_client, microsoft_fake, ca_file, smtp_starttls, smtp_server_factory
):
    authorize_microsoft(admin_client, microsoft_fake, ca_file, server_port=smtp_starttls.port)
    other = smtp_server_factory(security="starttls")
    admin_client.post(PAGE_URL, microsoft_post(other.port))
    assert_authorization_needed(admin_client)
    assert other.auth_mechanisms == [] and other.auth_failures == 0


@pytest.mark.parametrize("change", GOOGLE_CHANGES.values(), ids=GOOGLE_CHANGES.keys())
def test_changing_a_google_grant_field_needs_authorization(
    admin_client, google_fake, microsoft_fake, ca_file, smtp_starttls, change
):
    authorize_google(admin_client, google_fake, ca_file, server_port=smtp_starttls.port)
    before = stored().version
    admin_client.post(PAGE_URL, google_post(smtp_starttls.port, **change))
    assert stored().version == before + 1
    assert_authorization_needed(admin_client)


def test_a_username_change_keeps_a_google_grant(
    admin_client, google_fake, ca_file, smtp_server_factory
):
    server = xoauth2_server(smtp_server_factory, google_fake, G_USER, "https://mail.google.com/")
    authorize_google(admin_client, google_fake, ca_file, server_port=server.port)
    # Google's page has no Username: it changes only through Basic auth and back.
    admin_client.post(PAGE_URL, google_post(server.port, auth="basic", username="x@example.org"))
    admin_client.post(PAGE_URL, google_post(server.port))
    assert stored().username == "x@example.org"
    assert grant_state(stored()).status == "active"
    assert send_test_message() == 1
    assert server.messages[0].auth_user == G_USER  # the account that consented sends


def test_a_token_another_process_refreshed_is_read_from_the_grant_row(
    admin_client, microsoft_fake, ca_file
):
    # The row is the one cache of the grant's access token: no copy in this process
    # can hide what another process stored.
    authorize_microsoft(admin_client, microsoft_fake, ca_file)
    first = StoredGrantTokenProvider(stored()).get_token()
    refreshed = microsoft_fake.issue_user_tokens(
        MS_TENANT, MS_CLIENT, MS_USER, "https://outlook.office.com/SMTP.Send offline_access"
    )
    grant = OAuthGrant.objects.get()
    grant.access_token = refreshed["access_token"]
    grant.save()
    token = StoredGrantTokenProvider(stored()).get_token()
    assert token.token == refreshed["access_token"] != first.token


def test_the_grants_state_is_a_grant_status(admin_client, microsoft_fake, ca_file):
    assert grant_state(stored()).status is GrantStatus.MISSING
    authorize_microsoft(admin_client, microsoft_fake, ca_file)
    assert grant_state(stored()).status is GrantStatus.ACTIVE


def test_google_refreshes_keep_the_shared_connection_open(admin_client, google_fake, ca_file):
    # google-auth's transport closes its session when collected: one made per refresh
    # used to drop the connection every time.
    authorize_google(admin_client, google_fake, ca_file)
    google_fake.connections = 0
    for _ in range(3):
        StoredGrantTokenProvider(stored()).get_token(force=True)
        gc.collect()
    assert google_fake.connections <= 1
