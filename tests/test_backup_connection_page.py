"""The Backup Connection page: the Mail Server page's form for a second, complete
connection, with its own secrets, history, conflicts, Test Mail and OAuth grant."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection as db
from pytest_django.asserts import assertInHTML

from oauth.grant import StoredGrantTokenProvider, grant_state
from oauth.models import AuthorizationRequest, OAuthGrant
from settings_app.models import AuditEntry, Connection, MailServerConfig
from settings_app.values import MailSettings
from tests.backup_helpers import (
    BACKUP_PASSWORD,
    BACKUP_TEST_URL,
    BACKUP_URL,
    BACKUP_USER,
    backup_post,
    backup_server_users,
    store_backup,
)
from tests.factories import PAGE_URL, smtp_basic_post, store_smtp, user_with_permission
from tests.oauth_helpers import (
    CALLBACK,
    MS_USER,
    authorize_microsoft,
    consent,
    local,
    microsoft_post,
    register_microsoft,
)

pytestmark = pytest.mark.django_db
FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}


def backup() -> MailServerConfig:
    return MailServerConfig.load(Connection.BACKUP)


def labels(html: str) -> list[str]:
    """The settings form's field labels, in page order (without the required-field stars)."""
    html = html[html.index('id="mail-server-form"') :]
    html = html[: html.index("</form>")]
    found = re.findall(r'<label[^>]*for="id_[^"]+"[^>]*>\s*([^<*]+?)\s*(?:<|\*)', html)
    return [label for label in found if label]


# The page ---------------------------------------------------------------------------


def test_the_backup_page_has_every_label_of_the_mail_server_page_and_the_failover_switch(
    admin_client,
):
    primary = admin_client.get(PAGE_URL).content.decode()
    page = admin_client.get(BACKUP_URL).content.decode()
    assert '<h1 class="h3 mb-0">Backup Connection</h1>' in page
    assert labels(page) == ["Use the backup connection when the primary fails", *labels(primary)]
    for button in ("Save Settings", "Test Mail", "Check permissions"):
        assert f">{button}</button>" in page
    assert 'formaction="/admin/general-settings/mail-server/backup/test-mail/"' in page


def test_the_mail_server_page_and_the_navigation_link_to_the_backup_page(admin_client):
    primary = admin_client.get(PAGE_URL).content.decode()
    assert 'data-testid="backup-link"' in primary and f'href="{BACKUP_URL}"' in primary
    assertInHTML(
        f"""<p class="small mb-2" data-testid="backup-status">
        <strong>Backup connection:</strong> none.
        <a href="{BACKUP_URL}" data-testid="backup-link">Set up a backup connection</a></p>""",
        primary,
    )
    page = admin_client.get(BACKUP_URL).content.decode()
    assertInHTML(
        f'<a class="nav-link nav-link-sub active" href="{BACKUP_URL}">Backup Connection</a>', page
    )


def test_the_mail_server_page_says_when_the_backup_stands_by(admin_client, smtp_starttls):
    store_backup(smtp_starttls)
    primary = admin_client.get(PAGE_URL).content.decode()
    assert "stands by</span> takes over when this connection fails" in primary


def test_the_primary_page_has_no_failover_switch(admin_client):
    assert "use_when_primary_fails" not in admin_client.get(PAGE_URL).content.decode()


def test_saving_the_backup_page_stores_the_backup_and_leaves_the_primary_alone(
    admin_client, smtp_starttls
):
    store_smtp(smtp_starttls)
    primary_before = MailSettings.from_model(MailServerConfig.load())
    response = admin_client.post(BACKUP_URL, backup_post(smtp_starttls))
    assert response.status_code == 302 and response["Location"] == BACKUP_URL
    saved = backup()
    assert (saved.pk, saved.version, saved.username, saved.password) == (
        MailServerConfig.BACKUP_ID,
        1,
        BACKUP_USER,
        BACKUP_PASSWORD,
    )
    assert saved.use_when_primary_fails
    assert MailSettings.from_model(MailServerConfig.load()) == primary_before


def test_the_failover_switch_is_saved_and_audited(admin_client, smtp_starttls):
    admin_client.post(BACKUP_URL, backup_post(smtp_starttls))
    post = backup_post(smtp_starttls, password="")
    del post["use_when_primary_fails"]  # an unticked checkbox is not posted
    admin_client.post(BACKUP_URL, post)
    assert not backup().use_when_primary_fails
    entry = AuditEntry.objects.filter(connection="backup").first()
    assert entry.changed_fields == ["Use the backup connection when the primary fails (off)"]


# Secrets and audit ------------------------------------------------------------------


def test_the_backups_secrets_are_encrypted_in_the_database(admin_client, smtp_starttls):
    admin_client.post(BACKUP_URL, backup_post(smtp_starttls))  # SMTP: the password
    graph = {
        "mode": "api",
        "api_tenant_id": "7a1b2c3d-1111-4222-8333-444455556666",
        "api_client_id": "0c1d2e3f-aaaa-4bbb-8ccc-ddddeeeeffff",
        "api_client_secret": "backup-graph-secret",
    }
    admin_client.post(BACKUP_URL, backup_post(**graph))  # then Graph: its client secret
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT password, api_client_secret FROM settings_app_mailserverconfig WHERE id = %s",
            [MailServerConfig.BACKUP_ID],
        )
        password, api_secret = cursor.fetchone()
    assert password and BACKUP_PASSWORD not in password
    assert api_secret and "backup-graph-secret" not in api_secret
    assert (backup().password, backup().api_client_secret) == (
        BACKUP_PASSWORD,
        "backup-graph-secret",
    )


def test_the_backups_secrets_are_never_rendered_back(admin_client, smtp_starttls):
    store_backup(smtp_starttls)
    page = admin_client.get(BACKUP_URL).content.decode()
    assert BACKUP_PASSWORD not in page
    assert 'placeholder="stored - leave blank to keep"' in page


def test_audit_entries_say_which_connection_they_are_about(admin_client, smtp_starttls):
    admin_client.post(PAGE_URL, smtp_basic_post())
    admin_client.post(BACKUP_URL, backup_post(smtp_starttls))
    primary_entry = AuditEntry.objects.get(connection="primary")
    backup_entry = AuditEntry.objects.get(connection="backup")
    assert not primary_entry.summary.startswith("Backup")
    assert backup_entry.summary.startswith("Backup connection: Saved settings: ")
    # Each page lists its own connection's history.
    primary_page = admin_client.get(PAGE_URL).content.decode()
    backup_page = admin_client.get(BACKUP_URL).content.decode()
    assert "Backup connection: Saved settings" in backup_page
    assert "Backup connection: Saved settings" not in primary_page


# Concurrency ------------------------------------------------------------------------


def test_a_save_over_a_newer_backup_is_refused_and_keeps_what_was_typed(
    admin_client, client, smtp_starttls
):
    stale = backup_post(smtp_starttls, server_name="mine.example.com")  # loaded at version 0
    client.force_login(user_with_permission())
    client.post(BACKUP_URL, backup_post(smtp_starttls, server_name="theirs.example.com"))

    response = admin_client.post(BACKUP_URL, stale)
    assert response.status_code == 409
    body = response.content.decode()
    assert "Not saved" in body and "operator changed" in body and "Server Name or IP" in body
    assert "mine.example.com" in body
    assert backup().server_name == "theirs.example.com"
    assert response.context["form"].data["version"] == "1"  # as a form posts it


def test_a_save_of_the_primary_is_no_conflict_for_the_backup_page(admin_client, smtp_starttls):
    backup_form = backup_post(smtp_starttls)  # the backup page opened at version 0
    admin_client.post(PAGE_URL, smtp_basic_post())  # the primary is saved meanwhile
    response = admin_client.post(BACKUP_URL, backup_form)
    assert response.status_code == 302
    assert backup().version == 1 and MailServerConfig.load().version == 1


# Test Mail --------------------------------------------------------------------------


def test_test_mail_on_the_backup_page_uses_the_backups_stored_password(
    admin_client, smtp_server_factory, trust_test_ca
):
    # One server for both: it only accepts the backup's password; the primary's differs.
    server = smtp_server_factory(security="starttls", users=backup_server_users())
    store_smtp(server, password="the-primarys-password")
    store_backup(server)
    body = admin_client.post(BACKUP_TEST_URL, backup_post(server, password=""), **FETCH)
    assert "Nothing was sent" not in body.content.decode()
    (received,) = server.messages
    assert received.auth_user == BACKUP_USER and server.auth_failures == 0
    entry = AuditEntry.objects.get(action="Test Mail")
    assert entry.connection == "backup"
    assert "stored secrets used: Password" in entry.changed_fields
    assert entry.summary.startswith("Backup connection: Test Mail; ")


def test_test_mail_on_the_backup_page_sends_its_password_only_to_its_saved_server(
    admin_client, smtp_starttls, smtp_server_factory, trust_test_ca
):
    store_backup(smtp_starttls)
    listener = smtp_server_factory(security="starttls")
    body = admin_client.post(BACKUP_TEST_URL, backup_post(listener, password=""), **FETCH)
    assert listener.connections == 0
    assert "Password: Port Number changed since the password was saved" in body.content.decode()


def test_test_mail_on_the_backup_page_never_uses_the_primarys_password(
    admin_client, smtp_starttls, trust_test_ca
):
    store_smtp(smtp_starttls)  # the primary's password is stored for this very server
    post = backup_post(smtp_starttls, password="", username="alice@example.com")
    body = admin_client.post(BACKUP_TEST_URL, post, **FETCH).content.decode()
    # The backup has no stored password, and a sign-in without one is not even tried.
    assert "Nothing was sent" in body
    assert "Enter the password for this username" in body
    assert smtp_starttls.connections == 0 and smtp_starttls.auth_failures == 0


@pytest.mark.parametrize("url", [BACKUP_TEST_URL, PAGE_URL + "test-mail/"])
def test_test_mail_refuses_a_username_without_a_password_on_both_pages(
    admin_client, smtp_starttls, url
):
    post = backup_post(smtp_starttls, password="", username="alice@example.com")
    response = admin_client.post(url, post, **FETCH)
    assert "Enter the password for this username" in response.content.decode()
    assert smtp_starttls.connections == 0


# OAuth consent ----------------------------------------------------------------------


def start_backup_consent(client, **overrides) -> str:
    post = microsoft_post(version=str(backup().version), **overrides)
    response = client.post(BACKUP_URL, post | {"after_save": "authorize"})
    assert response.status_code == 302, response.content[:500]
    return response["Location"]


def test_the_backups_consent_state_says_backup_and_comes_back_to_the_same_redirect_uri(
    admin_client, microsoft_fake
):
    register_microsoft(microsoft_fake)
    url = start_backup_consent(admin_client)
    assert parse_qs(urlsplit(url).query)["redirect_uri"] == [CALLBACK]
    request = AuthorizationRequest.objects.get()
    assert request.connection == "backup"
    assert request.config_version == backup().version


def test_the_backups_consent_stores_the_grant_for_the_backup_and_leaves_the_primarys(
    admin_client, microsoft_fake, ca_file
):
    primary_grant = authorize_microsoft(admin_client, microsoft_fake, ca_file)
    back = consent(start_backup_consent(admin_client), ca_file)
    response = admin_client.get(local(back))
    assert response.status_code == 302 and response["Location"] == BACKUP_URL

    backup_grant = OAuthGrant.objects.get(connection="backup")
    assert backup_grant.account == MS_USER
    untouched = OAuthGrant.objects.get(connection="primary")
    assert (untouched.pk, untouched.refresh_token, untouched.authorized_at) == (
        primary_grant.pk,
        primary_grant.refresh_token,
        primary_grant.authorized_at,
    )
    assert backup_grant.refresh_token != primary_grant.refresh_token
    entry = AuditEntry.objects.filter(action__startswith="Authorized OAuth").first()
    assert entry.connection == "backup"


def test_the_backups_grant_gives_the_backup_its_tokens(admin_client, microsoft_fake, ca_file):
    register_microsoft(microsoft_fake)
    back = consent(start_backup_consent(admin_client), ca_file)
    admin_client.get(local(back))
    backup_settings = MailSettings.from_model(backup())
    assert grant_state(backup_settings).usable
    token = StoredGrantTokenProvider(backup_settings).get_token()
    assert microsoft_fake.token_is_valid(token.token, "SMTP.Send")
    # The primary (never authorized) has no grant from it.
    assert grant_state(MailSettings.from_model(MailServerConfig.load())).status == "missing"


def test_disconnect_on_the_backup_page_removes_only_the_backups_grant(
    admin_client, microsoft_fake, ca_file
):
    authorize_microsoft(admin_client, microsoft_fake, ca_file)
    admin_client.get(local(consent(start_backup_consent(admin_client), ca_file)))
    response = admin_client.post(BACKUP_URL + "oauth/disconnect/")
    assert response["Location"] == BACKUP_URL
    assert list(OAuthGrant.objects.values_list("connection", flat=True)) == ["primary"]
