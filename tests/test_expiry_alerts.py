"""The expiry radar's alert mail: one per credential and threshold, to the Admin Mail Address,
sent by a daily check on the workers.

The clock is injected (``check_expiries(now)``): the credential's expiry is fixed and
the check runs 31, 30, 29, 7 and 1 days before it, and after it. The mails go to real
local SMTP servers, through the connection the incidents' alerts would use.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from sender import schedules
from sender.tasks import recover_outbox
from settings_app.expiry_alerts import check_expiries, ensure_scheduled, next_check
from settings_app.models import ExpiryAlert, MailServerConfig, ServerCertificateSeen
from settings_app.tasks import expiry_alert_check
from tests.backup_helpers import backup_server_users, store_backup
from tests.factories import PAGE_URL, store, store_smtp
from tests.outbox_helpers import run_due_tasks

pytestmark = pytest.mark.django_db(transaction=True)

ADMIN = "admin@example.com"
EXPIRES = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
BACKUP_PAGE_URL = PAGE_URL + "backup/"


def days_before(days: float, expires: datetime = EXPIRES) -> datetime:
    return expires - timedelta(days=days)


def certificate_expires(server, not_after: datetime = EXPIRES) -> None:
    """As if Test Mail had seen ``server``'s TLS certificate expire at ``not_after``."""
    ServerCertificateSeen.remember("localhost", server.port, "localhost", not_after)


def alerts_received(server) -> list:
    return [m for m in server.messages if m.message["Subject"].startswith("Expiry warning")]


def body(message) -> str:
    return message.message.get_payload(decode=True).decode()


@pytest.fixture
def primary(smtp_starttls, trust_test_ca):
    """SMTP Basic to a local server over STARTTLS, whose certificate expires at EXPIRES."""
    store_smtp(smtp_starttls, admin_address=ADMIN)
    certificate_expires(smtp_starttls)
    return smtp_starttls


@pytest.fixture
def backup_server(smtp_server_factory, trust_test_ca):
    return smtp_server_factory(security="starttls", users=backup_server_users())


# Once per threshold ------------------------------------------------------------------------


def test_nothing_is_sent_before_30_days_ahead(primary):
    assert check_expiries(days_before(31)) == []
    assert alerts_received(primary) == []


def test_crossing_30_days_sends_one_alert_to_the_admin_mail_address(primary):
    (alert,) = check_expiries(days_before(30))

    (mail,) = alerts_received(primary)
    assert mail.rcpt_tos == [ADMIN]
    assert mail.message["Subject"].startswith(
        f"Expiry warning: The TLS certificate of localhost:{primary.port}"
    )
    assert (alert.key, alert.threshold) == ("primary:server_certificate", "notice")
    assert (alert.outcome, alert.via, alert.note) == ("sent", "primary", f"Sent to {ADMIN}")
    assert alert.expires_at == EXPIRES


def test_the_alert_says_what_expires_when_what_to_do_and_where(primary):
    check_expiries(days_before(30))
    (mail,) = alerts_received(primary)
    text = body(mail)
    assert f"The TLS certificate of localhost:{primary.port}" in text
    assert "expires in 30 days (2027-03-01)" in text
    assert "Expires: 2027-03-01 12:00 UTC" in text
    assert "mail through the primary connection stops" in text
    assert "What to do: Ask whoever runs the mail server to renew its certificate" in text
    assert f"Go to the setting: {PAGE_URL}#smtp-server" in text


def test_the_link_is_the_public_address_when_one_is_set(primary, settings):
    settings.MAILCONFIG_PUBLIC_URL = "https://mail.example.com"
    check_expiries(days_before(30))
    (mail,) = alerts_received(primary)
    assert f"https://mail.example.com{PAGE_URL}#smtp-server" in body(mail)


def test_a_second_check_within_the_same_threshold_sends_nothing(primary):
    check_expiries(days_before(30))
    assert check_expiries(days_before(30) + timedelta(hours=6)) == []  # the same day
    assert check_expiries(days_before(20)) == []  # still within 30 days, not yet 7
    assert len(alerts_received(primary)) == 1


def test_each_new_threshold_sends_one_more_alert(primary):
    for days in (30, 29, 7, 6, 1, 0.5, 0, -1):
        check_expiries(days_before(days))

    subjects = [mail.message["Subject"] for mail in alerts_received(primary)]
    assert len(subjects) == 4
    assert "expires in 30 days" in subjects[0]
    assert "expires in 7 days" in subjects[1]
    assert "expires in 1 day" in subjects[2]
    assert "expired on" in subjects[3]
    assert list(ExpiryAlert.objects.order_by("sent_at").values_list("threshold", flat=True)) == [
        "notice",
        "warning",
        "critical",
        "expired",
    ]


def test_a_check_that_was_missed_sends_only_the_nearest_threshold(primary):
    # No worker ran between 30 and 7 days ahead: one alert (7 days), not two.
    check_expiries(days_before(6))
    (mail,) = alerts_received(primary)
    assert "expires in 6 days" in mail.message["Subject"]
    assert ExpiryAlert.objects.get().threshold == "warning"


def test_a_clock_set_back_does_not_send_a_farther_threshold_again(primary):
    check_expiries(days_before(6))
    assert check_expiries(days_before(20)) == []
    assert len(alerts_received(primary)) == 1


def test_a_new_expiry_date_starts_the_alerts_over(primary):
    check_expiries(days_before(30))
    check_expiries(days_before(7))
    # The server got a new certificate, which itself expires in 20 days (a short one).
    renewed = EXPIRES + timedelta(days=13)
    certificate_expires(primary, renewed)

    (alert,) = check_expiries(days_before(7))
    assert (alert.threshold, alert.expires_at) == ("notice", renewed)
    assert len(alerts_received(primary)) == 3
    assert "expires in 20 days" in alerts_received(primary)[-1].message["Subject"]


def test_a_credential_far_from_its_expiry_sends_nothing_once_renewed(primary):
    check_expiries(days_before(7))
    certificate_expires(primary, EXPIRES + timedelta(days=365))
    assert check_expiries(days_before(6)) == []
    assert len(alerts_received(primary)) == 1


# When it cannot be sent ------------------------------------------------------------------


def test_an_alert_that_could_not_be_sent_is_recorded_and_tried_at_the_next_check(
    smtp_starttls, trust_test_ca
):
    store_smtp(smtp_starttls)  # no Admin Mail Address
    certificate_expires(smtp_starttls)

    (failed,) = check_expiries(days_before(30))
    assert failed.outcome == "failed"
    assert failed.note == "Not sent: No Admin Mail Address is saved."
    assert alerts_received(smtp_starttls) == []

    store(admin_address=ADMIN)
    (sent,) = check_expiries(days_before(29))
    assert (sent.pk, sent.outcome) == (failed.pk, "sent")
    assert len(alerts_received(smtp_starttls)) == 1
    assert check_expiries(days_before(28)) == []


def test_the_page_shows_the_last_alert_mail_of_each_credential(
    admin_client, smtp_starttls, trust_test_ca
):
    store_smtp(smtp_starttls)  # no Admin Mail Address: the first alert cannot go
    certificate_expires(smtp_starttls)
    check_expiries(days_before(30))

    page = admin_client.get(PAGE_URL).content.decode()
    assert (
        "Alert mail, 30 days ahead, 2027-01-30 12:00: Not sent: No Admin Mail Address is "
        "saved. It is tried again at the next daily check." in page
    )

    store(admin_address=ADMIN)
    check_expiries(days_before(7))
    page = admin_client.get(PAGE_URL).content.decode()
    assert f"Alert mail, 7 days ahead, 2027-02-22 12:00: Sent to {ADMIN}." in page
    assert "30 days ahead, 2027-01-30" not in page  # only the last one


# Which connection --------------------------------------------------------------------------


def test_the_backups_credential_is_mailed_through_the_primary_with_a_link_to_the_backup_page(
    primary, backup_server
):
    certificate_expires(primary, EXPIRES + timedelta(days=365))  # the primary's is fine
    store_backup(backup_server)
    certificate_expires(backup_server)

    (alert,) = check_expiries(days_before(7))
    assert (alert.key, alert.via) == ("backup:server_certificate", "primary")
    (mail,) = alerts_received(primary)
    assert mail.rcpt_tos == [ADMIN]  # the Mail Server page's Admin Mail Address
    text = body(mail)
    assert mail.message["Subject"].startswith("Expiry warning: Backup connection: The TLS")
    assert "mail through the backup connection stops" in text
    assert f"Go to the setting: {BACKUP_PAGE_URL}#smtp-server" in text
    assert alerts_received(backup_server) == []


def test_the_primarys_credential_is_mailed_through_the_backup_when_it_is_in_use(
    primary, backup_server
):
    store_backup(backup_server)
    (alert,) = check_expiries(days_before(7))
    assert (alert.key, alert.via) == ("primary:server_certificate", "backup")
    (mail,) = alerts_received(backup_server)
    assert mail.rcpt_tos == [ADMIN]
    assert alerts_received(primary) == []


def test_a_backup_that_is_not_in_use_is_not_watched(primary, backup_server):
    certificate_expires(primary, EXPIRES + timedelta(days=365))
    store_backup(backup_server, use=False)
    certificate_expires(backup_server)
    assert check_expiries(days_before(7)) == []


# On the workers ------------------------------------------------------------------------------


def queued_checks() -> list[DBTaskResult]:
    return list(
        DBTaskResult.objects.filter(task_path=expiry_alert_check.module_path, status="READY")
    )


def test_the_check_runs_daily_at_six_in_the_consoles_time_zone(settings):
    settings.TIME_ZONE = "Europe/Paris"
    after = datetime(2027, 1, 10, 4, 30, tzinfo=UTC)  # 05:30 in Paris
    assert next_check(after) == datetime(2027, 1, 10, 5, 0, tzinfo=UTC)
    assert next_check(next_check(after)) == datetime(2027, 1, 11, 5, 0, tzinfo=UTC)


def test_one_daily_check_is_queued_however_often_it_is_asked_for():
    slot = ensure_scheduled()
    assert ensure_scheduled() is None
    (task,) = queued_checks()
    assert task.run_after == slot
    assert timezone.localtime(slot).time() == time(6, 0) and slot > timezone.now()


def test_a_starting_worker_checks_at_once_then_queues_the_next_days_check(
    smtp_starttls, trust_test_ca
):
    store_smtp(smtp_starttls, admin_address=ADMIN)
    certificate_expires(smtp_starttls, timezone.now() + timedelta(days=20))

    schedules.start_schedules()  # what manage.py db_worker does when it starts
    run_due_tasks()

    (mail,) = alerts_received(smtp_starttls)
    assert "expires in 19 days" in mail.message["Subject"] or "20 days" in mail.message["Subject"]
    (task,) = queued_checks()
    assert task.run_after == next_check(timezone.now())


def test_the_recovery_sweep_queues_the_check_again_if_its_chain_broke():
    assert queued_checks() == []  # e.g. a worker was killed while running it
    recover_outbox.enqueue()
    run_due_tasks()
    assert len(queued_checks()) == 1


def test_nothing_is_checked_before_the_settings_are_saved():
    assert not MailServerConfig.load().is_configured
    assert check_expiries() == []
