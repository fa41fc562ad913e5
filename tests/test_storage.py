"""Stored configuration: encrypted secrets, keep/clear, mode switching, conflicts, audit, keys."""

import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.checks import run_checks
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection

from settings_app import encryption
from settings_app.models import AuditEntry, MailServerConfig
from tests.factories import PAGE_URL, service_account_json, smtp_basic_post, user_with_permission
from tests.oauth_helpers import google_post, microsoft_post
from tests.test_api_transports import GRAPH_VALUES

pytestmark = pytest.mark.django_db

CANARY = "CANARY-7f3a9c"


def raw_row() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM settings_app_mailserverconfig")
        return repr(cursor.fetchall())


def save_canaries(client) -> None:
    client.post(PAGE_URL, smtp_basic_post(password=CANARY + "-password"))
    client.post(
        PAGE_URL,
        smtp_basic_post(
            mode="api",
            api_tenant_id="contoso.com",
            api_client_id="1b2c3d4e-1111-2222-3333-444455556666",
            api_client_secret=CANARY + "-api-secret",
        ),
    )
    key = service_account_json(private_key_id=CANARY + "-key")
    client.post(
        PAGE_URL,
        smtp_basic_post(
            mode="api",
            api_provider="google",
            service_account_key=SimpleUploadedFile("k.json", key, "application/json"),
        ),
    )


def test_secrets_are_encrypted_in_the_database(admin_client):
    save_canaries(admin_client)
    config = MailServerConfig.load()
    assert config.password == CANARY + "-password"
    assert config.api_client_secret == CANARY + "-api-secret"
    assert CANARY + "-key" in config.service_account_key
    assert CANARY not in raw_row()
    assert "PRIVATE KEY" not in raw_row()


def test_secrets_are_absent_from_the_database_file(admin_client, settings):
    save_canaries(admin_client)
    db_name = Path(connection.settings_dict["NAME"])
    if connection.vendor != "sqlite" or not db_name.exists():
        pytest.skip("an in-memory or server database has no file to read")
    for suffix in ("", "-wal", "-journal"):  # WAL mode: recent writes are in the -wal file
        path = db_name.with_name(db_name.name + suffix)
        if path.exists():
            assert CANARY.encode() not in path.read_bytes()


def test_secrets_never_reach_a_rendered_page(admin_client):
    save_canaries(admin_client)
    for mode in ("smtp", "api"):
        MailServerConfig.objects.update(mode=mode)
        body = admin_client.get(PAGE_URL).content.decode()
        assert CANARY not in body
        assert "stored - leave blank to keep" in body


def test_a_blank_secret_keeps_the_stored_one(admin_client):
    admin_client.post(PAGE_URL, smtp_basic_post(password="first"))
    admin_client.post(PAGE_URL, smtp_basic_post(password="", from_address="other@example.com"))
    config = MailServerConfig.load()
    assert (config.password, config.from_address) == ("first", "other@example.com")


@pytest.mark.parametrize(
    "change",
    [{"server_name": "smtp2.example.com"}, {"port": "2525"}, {"security": "none"}],
    ids=["server", "port", "security"],
)
def test_a_blank_password_is_not_kept_for_another_server(admin_client, change):
    admin_client.post(PAGE_URL, smtp_basic_post(password="first"))
    response = admin_client.post(PAGE_URL, smtp_basic_post(password="", **change))
    assert response.status_code == 200
    assert "enter the password again" in response.context["form"].errors["password"][0]
    assert MailServerConfig.load().version == 1


def test_the_password_typed_again_saves_the_new_server(admin_client):
    admin_client.post(PAGE_URL, smtp_basic_post(password="first"))
    admin_client.post(PAGE_URL, smtp_basic_post(password="first", server_name="smtp2.example.com"))
    assert MailServerConfig.load().server_name == "smtp2.example.com"


def test_a_blank_graph_client_secret_is_not_kept_for_another_tenant(admin_client):
    graph = {
        "mode": "api",
        "api_tenant_id": "contoso.com",
        "api_client_id": "1b2c3d4e-1111-2222-3333-444455556666",
    }
    admin_client.post(PAGE_URL, smtp_basic_post(**graph, api_client_secret="api-secret"))
    response = admin_client.post(
        PAGE_URL, smtp_basic_post(**graph | {"api_tenant_id": "fabrikam.com"})
    )
    (error,) = response.context["form"].errors["api_client_secret"]
    assert error.startswith("Tenant ID changed since the client secret was saved")
    assert MailServerConfig.load().api_tenant_id == "contoso.com"


def test_the_clear_checkbox_removes_the_stored_secret(admin_client):
    admin_client.post(PAGE_URL, smtp_basic_post(password="first"))
    admin_client.post(PAGE_URL, smtp_basic_post(password="", clear_password="on"))
    assert MailServerConfig.load().password == ""
    assert "Password (cleared)" in AuditEntry.objects.first().changed_fields


def test_switching_mode_keeps_the_other_modes_values(admin_client):
    admin_client.post(PAGE_URL, smtp_basic_post())
    admin_client.post(
        PAGE_URL,
        smtp_basic_post(
            mode="api",
            server_name="",
            port="",
            api_tenant_id="contoso.com",
            api_client_id="1b2c3d4e-1111-2222-3333-444455556666",
            api_client_secret="api-secret",
        ),
    )
    config = MailServerConfig.load()
    assert config.mode == "api"
    assert (config.server_name, config.port, config.password) == (
        "smtp.example.com",
        587,
        "s3cret-password",
    )


def test_saving_over_a_newer_version_is_refused_and_keeps_what_was_typed(admin_client, client):
    stale = smtp_basic_post(server_name="mine.example.com")  # form loaded at version 0
    client.force_login(user_with_permission())
    client.post(PAGE_URL, smtp_basic_post(server_name="theirs.example.com"))

    response = admin_client.post(PAGE_URL, stale)
    assert response.status_code == 409
    body = response.content.decode()
    assert "Not saved" in body and "operator changed" in body and "Server Name or IP" in body
    assert "mine.example.com" in body
    assert MailServerConfig.load().server_name == "theirs.example.com"
    # The form now carries the current version, so saving again is a deliberate overwrite.
    assert response.context["form"].data["version"] == "1"  # as a form posts it


def save_as_operator(client, **overrides) -> None:
    client.force_login(user_with_permission())
    client.post(PAGE_URL, smtp_basic_post(**overrides))


def test_a_refused_save_names_the_typed_secrets_to_enter_again(admin_client, client):
    key = SimpleUploadedFile("key.json", service_account_json(), "application/json")
    stale = smtp_basic_post(
        password=CANARY, api_client_secret=CANARY + "-api", service_account_key=key
    )
    save_as_operator(client, server_name="theirs.example.com")

    response = admin_client.post(PAGE_URL, stale)
    assert response.status_code == 409
    body = response.content.decode()
    assert CANARY not in body
    assert "re-enter the secrets named below" in body
    assert "Your entries are still on the form" not in body
    # Only the active section's secrets: the API ones were neither used nor saved.
    assert "re-enter Password, or leave it blank to keep the stored value" in body


def test_a_refused_api_save_names_the_key_by_its_section(admin_client, client):
    key = SimpleUploadedFile("key.json", service_account_json(), "application/json")
    stale = smtp_basic_post(mode="api", api_provider="google", service_account_key=key)
    save_as_operator(client, admin_address="theirs@example.com")

    body = admin_client.post(PAGE_URL, stale).content.decode()
    assert "re-enter Gmail API JSON Private Key (choose the key file again)" in body


def test_a_refused_save_without_typed_secrets_has_nothing_to_re_enter(admin_client, client):
    stale = smtp_basic_post(password="")
    save_as_operator(client, admin_address="theirs@example.com")

    body = admin_client.post(PAGE_URL, stale).content.decode()
    assert "Your entries are still on the form" in body
    assert "re-enter" not in body


def test_each_save_is_audited_without_secret_values(admin_client):
    admin_client.post(PAGE_URL, smtp_basic_post(password=CANARY), REMOTE_ADDR="192.0.2.10")
    entry = AuditEntry.objects.get()
    assert entry.username == "admin" and entry.source_ip == "192.0.2.10" and entry.version == 1
    assert "Server Name or IP" in entry.changed_fields
    assert "Password (changed)" in entry.changed_fields
    assert CANARY not in json.dumps(entry.changed_fields)


def test_the_page_shows_the_last_20_audit_entries(admin_client):
    for number in range(22):
        admin_client.post(PAGE_URL, smtp_basic_post(port=str(1000 + number)))
    response = admin_client.get(PAGE_URL)
    assert len(response.context["audit_entries"]) == 20
    assert response.content.decode().count("<tr>") == 21  # header + 20 rows


def test_rotation_reencrypts_every_secret_with_the_newest_key(admin_client, settings):
    save_canaries(admin_client)
    old_key = settings.MAILCONFIG_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.MAILCONFIG_ENCRYPTION_KEYS = [new_key, old_key]
    call_command("rotate_encryption_key")
    settings.MAILCONFIG_ENCRYPTION_KEYS = [new_key]  # the old key can now be dropped
    config = MailServerConfig.load()
    assert config.password == CANARY + "-password"
    assert CANARY + "-key" in config.service_account_key


def test_rotation_with_a_wrong_key_changes_nothing(admin_client, settings):
    save_canaries(admin_client)
    before = raw_row()
    settings.MAILCONFIG_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match="Nothing was changed"):
        call_command("rotate_encryption_key")
    assert raw_row() == before


def test_a_wrong_key_shows_a_clear_page_and_fails_the_system_check(admin_client, settings):
    save_canaries(admin_client)
    settings.MAILCONFIG_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    response = admin_client.get(PAGE_URL)
    assert response.status_code == 503
    assert b"Stored secrets cannot be read" in response.content
    assert "settings_app.E002" in [e.id for e in run_checks()]


def test_a_malformed_key_fails_the_system_check(settings):
    settings.MAILCONFIG_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    assert "settings_app.E001" in [e.id for e in run_checks()]


def test_clear_mail_secrets_recovers_from_a_lost_key(admin_client, settings):
    save_canaries(admin_client)
    settings.MAILCONFIG_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    call_command("clear_mail_secrets")
    assert admin_client.get(PAGE_URL).status_code == 200
    assert MailServerConfig.load().password == ""


def test_without_configured_keys_a_0600_key_file_is_generated(settings, tmp_path):
    settings.MAILCONFIG_ENCRYPTION_KEYS = []
    settings.MAILCONFIG_KEY_FILE = tmp_path / "encryption.key"
    token = encryption.encrypt("hello")
    assert encryption.decrypt(token) == "hello"
    assert (settings.MAILCONFIG_KEY_FILE.stat().st_mode & 0o777) == 0o600
    assert settings.MAILCONFIG_KEY_FILE.read_text().strip() not in settings.SECRET_KEY


def test_the_change_history_names_each_section_s_client_id_and_secret_apart(
    admin_client, microsoft_fake, google_fake
):
    admin_client.post(PAGE_URL, microsoft_post())
    admin_client.post(PAGE_URL, google_post())
    admin_client.post(PAGE_URL, smtp_basic_post(**GRAPH_VALUES))
    changed = [name for entry in AuditEntry.objects.all() for name in entry.changed_fields]
    for name in (
        "Microsoft OAuth Client ID",
        "Microsoft OAuth Client Secret (changed)",
        "Google OAuth Client ID",
        "Google OAuth Client Secret (changed)",
        "Microsoft Graph Client ID",
        "Microsoft Graph Client Secret (changed)",
        "Microsoft Graph Tenant ID",
    ):
        assert name in changed
    assert "Client Secret (changed)" not in changed and "Client ID" not in changed


def test_the_conflict_message_names_the_section_of_a_changed_secret(admin_client, client):
    stale = smtp_basic_post(**GRAPH_VALUES)
    save_as_operator(client, **GRAPH_VALUES)
    body = admin_client.post(PAGE_URL, stale).content.decode()
    assert "operator changed" in body and "Microsoft Graph Client Secret (changed)" in body
