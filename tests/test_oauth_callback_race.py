"""Settings saved while the callback redeems the code: the grant is refused, not stored.

complete() checks the settings' version before redeeming, then again under the
settings' row lock before storing; a save that lands during the redemption (a
network round trip) is caught only by the second check. Also run on PostgreSQL.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import F

from oauth.models import OAuthGrant
from settings_app.models import MailServerConfig
from tests.oauth_helpers import (
    consent,
    local,
    microsoft_post,
    register_microsoft,
    start_consent,
)

pytestmark = [pytest.mark.db_sensitive, pytest.mark.django_db(transaction=True)]


def another_admin_saves(request) -> None:
    """Runs in the fake's thread, with its own database connection, like another process."""
    try:
        MailServerConfig.objects.filter(pk=MailServerConfig.SINGLETON_ID).update(
            admin_address="someone.else@contoso.com", version=F("version") + 1
        )
    finally:
        connection.close()


def test_settings_saved_during_the_code_redemption_refuse_the_grant(
    client, django_user_model, microsoft_fake, ca_file
):
    client.force_login(django_user_model.objects.create_superuser("root", password="pw-12345"))
    register_microsoft(microsoft_fake)
    back = consent(start_consent(client, microsoft_post()), ca_file)
    microsoft_fake.before["token"] = another_admin_saves
    response = client.get(local(back))
    assert microsoft_fake.tokens_issued["authorization_code"] == 1  # passed the first check
    assert response.status_code == 409
    assert b"settings changed" in response.content
    assert not OAuthGrant.objects.exists()
