"""The stored SMTP OAuth grant over its life: Disconnect, tokens across processes, refresh."""

from __future__ import annotations

import time

import pytest

from oauth.models import OAuthGrant
from tests.oauth_helpers import (
    DISCONNECT_URL,
    authorize_google,
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
