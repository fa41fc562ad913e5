"""The stored SMTP OAuth grant over its life: Disconnect, tokens across processes, refresh."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from oauth.consent import grant_fingerprint
from oauth.grant import StoredGrantTokenProvider
from oauth.models import OAuthGrant
from tests.oauth_helpers import (
    DISCONNECT_URL,
    MS_CLIENT,
    MS_TENANT,
    MS_USER,
    authorize_google,
    authorize_microsoft,
    microsoft_post,
    register_microsoft,
    start_consent,
    stored,
)

pytestmark = pytest.mark.django_db


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
