"""Failover: the backup connection sends what the primary cannot, and the log says so."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.utils import timezone

from sender import delivery, health_check
from sender.models import Attempt, Connection, Incident, OutboxMessage, Status
from sender.stored import backup_settings
from tests.backup_helpers import BACKUP_USER, backup_server_users, store_backup
from tests.factories import store_smtp
from tests.outbox_helpers import run_due_tasks, travel
from tests.servers.smtp_server import refused_port

pytestmark = pytest.mark.django_db(transaction=True)
LOG_URL = "/admin/general-settings/mail-server/log/"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def schedule(queued_backend, settings):
    settings.MAILCONFIG_RETRY_SCHEDULE = [60.0, 300.0, 900.0]
    settings.MAILCONFIG_FAILOVER_AFTER = 600.0


@pytest.fixture
def backup_server(smtp_server_factory, trust_test_ca):
    return smtp_server_factory(security="starttls", users=backup_server_users())


@pytest.fixture
def primary_down(trust_test_ca):
    """The primary points at a port where nothing listens: a temporary failure."""
    store_smtp(type("Down", (), {"port": refused_port()})(), server_name="127.0.0.1")


@pytest.fixture
def primary_refuses_login(smtp_starttls, trust_test_ca):
    """The primary's server refuses its password: a permanent failure."""
    store_smtp(smtp_starttls, password="not-the-password")
    return smtp_starttls


def send_one() -> OutboxMessage:
    mail.send_mail("Alert", "Body", None, ["bob@example.com"])
    run_due_tasks()
    return OutboxMessage.objects.get()


def to_bob(server) -> list:
    """The messages the server got for the test's recipient (not the alert mails)."""
    return [received for received in server.messages if received.rcpt_tos == ["bob@example.com"]]


def tries(row: OutboxMessage) -> list[tuple[str, str]]:
    return list(row.tries.order_by("started_at", "pk").values_list("connection", "outcome"))


def first_tried_seconds_ago(seconds: float) -> None:
    """As if the message's first attempt started ``seconds`` earlier (no sleeping)."""
    for attempt in Attempt.objects.all():
        attempt.started_at -= timedelta(seconds=seconds)
        attempt.save(update_fields=["started_at"])


# backup_settings(): the interface failover, alerts and health checks share ------------


def test_there_is_no_backup_until_one_is_saved():
    assert backup_settings() is None


def test_a_saved_backup_that_is_switched_off_is_not_used(backup_server):
    store_backup(backup_server, use=False)
    assert backup_settings() is None


def test_a_saved_backup_in_use_is_handed_out_with_its_own_values(backup_server):
    store_backup(backup_server)
    backup = backup_settings()
    assert backup is not None
    assert (backup.connection, backup.username, backup.port) == (
        "backup",
        BACKUP_USER,
        backup_server.port,
    )


def test_a_save_of_the_backup_is_seen_at_once(backup_server):
    store_backup(backup_server)
    assert backup_settings().from_address == BACKUP_USER
    store_backup(from_address="other@example.net")
    assert backup_settings().from_address == "other@example.net"


# Failover ------------------------------------------------------------------------------


def test_a_permanent_failure_on_the_primary_is_sent_through_the_backup_at_once(
    primary_refuses_login, backup_server
):
    store_backup(backup_server)
    row = send_one()
    assert row.status == Status.SENT and row.connection == Connection.BACKUP
    assert tries(row) == [("primary", "permanent"), ("backup", "sent")]
    (received,) = to_bob(backup_server)
    assert received.rcpt_tos == ["bob@example.com"] and received.auth_user == BACKUP_USER


def test_the_backup_sends_from_its_own_from_address_when_the_message_names_none(
    primary_refuses_login, backup_server
):
    store_backup(backup_server)
    send_one()
    (received,) = to_bob(backup_server)
    assert received.mail_from == BACKUP_USER
    assert received.message["From"] == BACKUP_USER


def test_the_primary_down_briefly_is_retried_on_the_primary_only(primary_down, backup_server):
    store_backup(backup_server)
    row = send_one()
    assert row.status == Status.RETRYING and row.connection == Connection.PRIMARY
    assert tries(row) == [("primary", "transient")]
    assert backup_server.connections == 0


def test_the_primary_down_longer_than_the_failover_time_and_the_backup_delivers(
    primary_down, backup_server
):
    store_backup(backup_server)
    send_one()
    first_tried_seconds_ago(601)
    travel(60 * 1.2 + 1)
    run_due_tasks()
    row = OutboxMessage.objects.get()
    assert row.status == Status.SENT and row.connection == Connection.BACKUP
    assert row.attempts == 2
    assert tries(row) == [("primary", "transient"), ("primary", "transient"), ("backup", "sent")]
    assert len(to_bob(backup_server)) == 1


def test_the_failover_time_is_the_setting(settings, primary_down, backup_server):
    settings.MAILCONFIG_FAILOVER_AFTER = 0.0
    store_backup(backup_server)
    row = send_one()
    assert row.status == Status.SENT and row.connection == Connection.BACKUP


def test_without_the_switch_on_the_backup_is_never_used(primary_refuses_login, backup_server):
    store_backup(backup_server, use=False)
    row = send_one()
    assert row.status == Status.FAILED and row.connection == Connection.PRIMARY
    assert backup_server.connections == 0


def test_both_failing_keeps_the_message_for_a_retry_when_the_backup_failure_is_temporary(
    primary_refuses_login, backup_server
):
    store_backup(backup_server)
    backup_server.injections.data_reply = "451 4.3.0 Please try again later"
    row = send_one()
    assert row.status == Status.RETRYING and row.connection == Connection.BACKUP
    assert row.last_error_code == "451"
    assert tries(row) == [("primary", "permanent"), ("backup", "transient")]


def test_a_backup_that_refuses_does_not_fail_a_message_the_primary_may_still_send(
    settings, primary_down, backup_server
):
    settings.MAILCONFIG_FAILOVER_AFTER = 0.0
    store_backup(backup_server, password="wrong-backup-password")
    row = send_one()
    assert row.status == Status.RETRYING and row.connection == Connection.PRIMARY
    assert tries(row) == [("primary", "transient"), ("backup", "permanent")]


def test_both_failing_for_good_fails_the_message_with_the_backups_error(
    primary_refuses_login, backup_server
):
    store_backup(backup_server, password="wrong-backup-password")
    row = send_one()
    assert row.status == Status.FAILED and row.connection == Connection.BACKUP
    assert tries(row) == [("primary", "permanent"), ("backup", "permanent")]


def test_the_worker_keeps_the_backups_connection_open_across_messages(
    primary_refuses_login, backup_server
):
    store_backup(backup_server)
    send_one()
    kept = delivery.backup_connections.current
    assert kept is not None
    mail.send_mail("Two", "Body", None, ["bob@example.com"])
    run_due_tasks()
    assert OutboxMessage.objects.filter(status=Status.SENT, connection="backup").count() == 2
    assert delivery.backup_connections.current is kept  # the same open transport


# The Email Log -------------------------------------------------------------------------


def test_the_email_log_shows_the_backup_delivered_it(
    admin_client, primary_refuses_login, backup_server
):
    store_backup(backup_server)
    row = send_one()
    listing = admin_client.get(LOG_URL).content.decode()
    assert '<td data-label="Connection">Backup</td>' in listing
    detail = admin_client.get(f"{LOG_URL}{row.pk}/").content.decode()
    assert "Connection used</dt><dd" in detail
    assert '<dd class="col-sm-9">Backup</dd>' in detail
    # Both tries are listed, each with its connection.
    assert '<td data-label="Connection">Primary</td>' in detail
    assert '<td data-label="Connection">Backup</td>' in detail


def test_the_email_log_says_primary_for_mail_the_primary_sent(
    admin_client, smtp_starttls, trust_test_ca
):
    store_smtp(smtp_starttls)
    send_one()
    listing = admin_client.get(LOG_URL).content.decode()
    assert '<td data-label="Connection">Primary</td>' in listing


# Incidents ---------------------------------------------------------------------------


def test_a_primary_failure_that_the_backup_covers_still_opens_the_primarys_incident(
    primary_refuses_login, backup_server
):
    store_backup(backup_server)
    send_one()
    incident = Incident.objects.get()
    assert incident.connection == "primary" and incident.closed_at is None


def test_delivery_through_the_backup_does_not_close_the_primarys_incident(
    primary_refuses_login, backup_server
):
    store_backup(backup_server)
    send_one()
    mail.send_mail("Second", "Body", None, ["bob@example.com"])
    run_due_tasks()
    assert Incident.objects.get(connection="primary").closed_at is None


def test_the_banner_of_a_backup_incident_leads_to_the_backup_page(admin_client):
    now = timezone.now()
    Incident.objects.create(
        connection="backup",
        cause=Incident.Cause.PERMANENT,
        failing_since=now,
        opened_at=now,
        last_failure_at=now,
        error="The server rejected the username and password.",
    )
    page = admin_client.get(LOG_URL).content.decode()
    assert (
        'href="/admin/general-settings/mail-server/backup/" data-testid="incident-fix">Check the'
        in page
    )


# The setting -----------------------------------------------------------------------


def project_setting(tmp_path, **env: str) -> subprocess.CompletedProcess:
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.MAILCONFIG_FAILOVER_AFTER)"
    )
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mailconfig.settings",
        "MAILCONFIG_DATA_DIR": str(tmp_path),
        **env,
    }
    if not env:
        environment.pop("MAILCONFIG_FAILOVER_AFTER", None)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True
    )


def test_the_failover_time_defaults_to_ten_minutes(tmp_path):
    result = project_setting(tmp_path)
    assert result.stdout.strip() == "600.0", result.stderr


def test_the_failover_time_is_read_from_the_environment(tmp_path):
    result = project_setting(tmp_path, MAILCONFIG_FAILOVER_AFTER="120")
    assert result.stdout.strip() == "120.0", result.stderr


def test_a_failover_time_that_is_not_seconds_stops_start_up_with_its_name(tmp_path):
    result = project_setting(tmp_path, MAILCONFIG_FAILOVER_AFTER="ten minutes")
    assert result.returncode != 0
    assert (
        "MAILCONFIG_FAILOVER_AFTER: 'ten minutes' is not a number of seconds from 0 and at most"
        in result.stderr
    )


def test_the_alert_of_a_backup_incident_leads_to_the_backup_page(
    smtp_starttls, smtp_server_factory, trust_test_ca
):
    # The primary works; the backup's server refuses its password at the health check.
    store_smtp(smtp_starttls, admin_address="admin@example.com")
    refusing = smtp_server_factory(security="starttls", users=backup_server_users())
    store_backup(refusing, password="not-the-password")
    health_check.run_checks()

    incident = Incident.objects.get(connection="backup")
    assert incident.alert_mail == Incident.AlertMail.SENT
    assert incident.alert_connection == "primary"
    (alert,) = [m for m in smtp_starttls.messages if m.message["Subject"].startswith("Mail is not")]
    body = alert.message.get_payload(decode=True).decode()
    assert "not being delivered through the backup connection" in body
    assert "Check the settings: /admin/general-settings/mail-server/backup/\r\n" in body
