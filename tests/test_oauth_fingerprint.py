"""The grant's credentials fingerprint: never in clear at rest, valid across a key rotation."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from oauth.consent import GRANT_FIELDS, grant_fingerprint
from oauth.grant import StoredGrantTokenProvider, grant_state
from settings_app.models import MailServerConfig
from tests.oauth_helpers import MS_SECRET, authorize_microsoft, save_microsoft_oauth_row, stored


def raw_fingerprints() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials_fingerprint FROM oauth_oauthgrant")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.django_db
def test_fingerprint_is_not_stored_in_clear(admin_client, microsoft_fake, ca_file):
    authorize_microsoft(admin_client, microsoft_fake, ca_file)
    fingerprint = grant_fingerprint(stored())
    assert grant_state(stored()).status == "active"
    [raw] = raw_fingerprints()
    # In clear it would be an offline oracle for guesses of the client secret.
    assert fingerprint not in raw
    assert raw.startswith("gAAAAA")  # a Fernet token


@pytest.mark.django_db
def test_key_rotation_keeps_the_grant_active(admin_client, microsoft_fake, ca_file, settings):
    authorize_microsoft(admin_client, microsoft_fake, ca_file)
    [before] = raw_fingerprints()
    old_key = settings.MAILCONFIG_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.MAILCONFIG_ENCRYPTION_KEYS = [new_key, old_key]
    call_command("rotate_encryption_key")
    settings.MAILCONFIG_ENCRYPTION_KEYS = [new_key]  # the old key is gone
    assert raw_fingerprints() != [before]
    assert grant_state(stored()).status == "active"
    token = StoredGrantTokenProvider(stored()).get_token(force=True)
    assert microsoft_fake.token_is_valid(token.token, "SMTP.Send")


@pytest.mark.django_db(transaction=True)
def test_migration_encrypts_existing_fingerprints_and_keeps_the_grant():
    save_microsoft_oauth_row()
    fingerprint = old_fingerprint(stored())  # as grants were fingerprinted then
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("oauth")
    before = [("oauth", "0001_grant_and_requests")]
    try:
        executor.migrate(before)
        old_apps = executor.loader.project_state(before).apps
        old_apps.get_model("oauth", "OAuthGrant").objects.create(
            pk=1, provider="microsoft", refresh_token="", credentials_fingerprint=fingerprint
        )
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
        [raw] = raw_fingerprints()
        assert fingerprint not in raw
        assert grant_state(stored()).status == "active"
        executor = MigrationExecutor(connection)
        executor.migrate(before)  # and back: the clear value again, fitting the old column
        assert raw_fingerprints() == [fingerprint]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)


@pytest.mark.django_db
def test_after_a_lost_key_the_grant_needs_authorization(
    admin_client, microsoft_fake, ca_file, settings
):
    authorize_microsoft(admin_client, microsoft_fake, ca_file)
    settings.MAILCONFIG_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the old key is lost
    call_command("clear_mail_secrets")
    config = MailServerConfig.load()
    config.oauth_client_secret = MS_SECRET  # re-entered
    config.save()
    # Not "active" with a blanked refresh token: the fingerprint was blanked with it.
    assert grant_state(stored()).status == "changed"


def old_fingerprint(config) -> str:
    """The fingerprint a grant got before it was bound to the SMTP server."""
    names = [n for n in GRANT_FIELDS["microsoft"] if n not in ("server_name", "port", "security")]
    return config.fingerprint(tuple(names))


@pytest.mark.django_db(transaction=True)
def test_migration_binds_a_fitting_grant_to_the_saved_server_and_keeps_it_active():
    save_microsoft_oauth_row(server_name="smtp.office365.com", port=587)
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("oauth")
    before = [("oauth", "0002_encrypt_credentials_fingerprint")]
    try:
        executor.migrate(before)
        old_apps = executor.loader.project_state(before).apps
        old_grant = old_apps.get_model("oauth", "OAuthGrant").objects.create(
            pk=1,
            provider="microsoft",
            refresh_token="",
            credentials_fingerprint=old_fingerprint(stored()),
        )
        # The old fingerprint (read through the old model: later migrations add columns).
        assert old_grant.credentials_fingerprint != grant_fingerprint(stored())
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
        assert grant_state(stored()).status == "active"
        # Bound: another server needs a new authorization.
        assert grant_state(replace(stored(), server_name="smtp.evil.example")).status == "changed"
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
