"""Scheduled health checks: a real Test Mail on a schedule, its history, and incidents."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time, timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from sender import health_check
from sender.models import HealthCheckRun, HealthCheckSchedule, Incident
from sender.stored import backup_settings
from sender.tasks import recover_outbox, scheduled_health_check
from settings_app.models import AuditEntry
from tests.backup_helpers import store_backup
from tests.factories import PAGE_URL, store_smtp
from tests.outbox_helpers import run_due_tasks

ADMIN = "admin@example.com"
SAVE_URL = PAGE_URL + "health-check/"
Frequency = HealthCheckSchedule.Frequency


def schedule(frequency: str = Frequency.HOURLY, **values) -> HealthCheckSchedule:
    row = HealthCheckSchedule(pk=HealthCheckSchedule.SINGLETON_ID, frequency=frequency, **values)
    row.save()
    return row


def queued_checks() -> list[DBTaskResult]:
    return list(
        DBTaskResult.objects.filter(
            task_path=scheduled_health_check.module_path, status="READY"
        ).order_by("run_after")
    )


def run_next_check() -> datetime:
    """Let time pass until the queued check is due (its run_after moved to now), and run it."""
    (task,) = queued_checks()
    slot = datetime.fromisoformat(task.args_kwargs["args"][0])
    task.run_after = timezone.now() - timedelta(seconds=1)
    task.save(update_fields=["run_after"])
    run_due_tasks()
    return slot


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# When checks run -------------------------------------------------------------------------


def test_hourly_checks_run_at_the_top_of_each_hour():
    hourly = HealthCheckSchedule(frequency=Frequency.HOURLY)
    assert health_check.next_run(hourly, at("2026-03-02T10:20:00+00:00")) == at(
        "2026-03-02T11:00:00+00:00"
    )
    assert health_check.next_run(hourly, at("2026-03-02T11:00:00+00:00")) == at(
        "2026-03-02T12:00:00+00:00"
    )


def test_a_daily_check_runs_at_its_time_today_or_else_tomorrow():
    daily = HealthCheckSchedule(frequency=Frequency.DAILY, daily_at=time(6, 30))
    assert health_check.next_run(daily, at("2026-03-02T05:00:00+00:00")) == at(
        "2026-03-02T06:30:00+00:00"
    )
    assert health_check.next_run(daily, at("2026-03-02T06:30:00+00:00")) == at(
        "2026-03-03T06:30:00+00:00"
    )


def test_the_daily_time_is_in_the_servers_time_zone(settings):
    settings.TIME_ZONE = "Europe/Berlin"  # UTC+1 in March before summer time
    daily = HealthCheckSchedule(frequency=Frequency.DAILY, daily_at=time(6, 30))
    assert health_check.next_run(daily, at("2026-03-02T04:00:00+00:00")) == at(
        "2026-03-02T05:30:00+00:00"
    )


def test_no_check_runs_when_the_schedule_is_off():
    assert health_check.next_run(HealthCheckSchedule(), datetime.now(UTC)) is None


# Running on schedule -----------------------------------------------------------------------

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def primary(smtp_starttls, trust_test_ca, settings):
    settings.MAILCONFIG_DELIVERY = "queued"
    store_smtp(smtp_starttls, admin_address=ADMIN)
    return smtp_starttls


def test_a_scheduled_check_waits_for_its_slot(primary):
    schedule()
    slot = health_check.ensure_scheduled()
    assert slot is not None and slot > timezone.now()
    assert run_due_tasks() == 0
    assert not HealthCheckRun.objects.exists() and primary.messages == []


def test_a_health_check_on_schedule_records_green_then_red(primary):
    schedule()
    health_check.ensure_scheduled()

    first_slot = run_next_check()
    primary.injections.data_reply = "554 5.7.1 Sending refused by policy"
    second_slot = run_next_check()

    green, red = health_check.history()
    assert (green.ok, green.scheduled_for) == (True, first_slot)
    assert (red.ok, red.scheduled_for) == (False, second_slot)
    assert second_slot == first_slot + timedelta(hours=1)
    assert red.error_code == "554" and red.error and red.hint
    assert green.duration_ms >= 0 and green.transport == "SMTP (Basic)"
    (message,) = primary.messages  # the green run's Test Mail
    assert message.rcpt_tos == [ADMIN]
    assert message.message["Subject"] == health_check.SUBJECT


def test_a_failed_health_check_opens_an_incident(primary):
    schedule()
    health_check.ensure_scheduled()
    primary.injections.data_reply = "554 5.7.1 Sending refused by policy"
    run_next_check()

    incident = Incident.objects.get()
    assert incident.is_open and incident.cause == Incident.Cause.HEALTH_CHECK
    assert incident.error_code == "554" and incident.messages_affected == 0


def test_a_passed_health_check_closes_the_incident(primary):
    schedule()
    health_check.ensure_scheduled()
    primary.injections.data_reply = "554 5.7.1 Sending refused by policy"
    run_next_check()
    primary.injections.data_reply = None
    run_next_check()

    incident = Incident.objects.get()
    assert not incident.is_open and incident.closed_by == "Health check passed"


def test_the_check_goes_to_another_address_when_one_is_set(primary):
    schedule(recipient="noc@example.com")
    health_check.ensure_scheduled()
    run_next_check()
    assert primary.messages[0].rcpt_tos == ["noc@example.com"]
    assert HealthCheckRun.objects.get().recipient == "noc@example.com"


def test_the_check_also_goes_through_the_backup_when_it_is_on(primary):
    store_backup(
        primary, username="alice@example.com", password="s3cret", from_address="alice@example.com"
    )
    assert backup_settings() is not None
    schedule()
    health_check.ensure_scheduled()
    run_next_check()
    assert sorted(HealthCheckRun.objects.values_list("connection", flat=True)) == [
        "backup",
        "primary",
    ]


def test_without_saved_settings_the_check_is_red_and_says_so(trust_test_ca):
    schedule()
    health_check.ensure_scheduled()
    run_next_check()
    run = HealthCheckRun.objects.get()
    assert not run.ok and "no mail server is configured" in run.error


def test_a_check_queued_before_the_schedule_changed_does_not_run(primary):
    schedule()
    health_check.ensure_scheduled()
    schedule(Frequency.DAILY, daily_at=time(6, 0))  # changed without rescheduling
    run_next_check()
    assert not HealthCheckRun.objects.exists()
    (task,) = queued_checks()  # the daily schedule's next check took its place
    assert timezone.localtime(task.run_after).time() == time(6, 0)


def test_turning_the_schedule_off_drops_the_queued_check(primary):
    schedule()
    health_check.ensure_scheduled()
    schedule(Frequency.OFF)
    assert health_check.reschedule() is None
    assert queued_checks() == []


def test_the_recovery_sweep_queues_the_check_again_if_the_chain_broke(primary):
    schedule()
    assert queued_checks() == []  # e.g. a worker was killed while running the check
    recover_outbox.enqueue()
    run_due_tasks()
    assert len(queued_checks()) == 1


def test_one_check_is_queued_however_often_the_sweep_runs(primary):
    schedule()
    for _ in range(3):
        health_check.ensure_scheduled()
    assert len(queued_checks()) == 1


def test_runs_beyond_those_kept_are_deleted(primary):
    now = timezone.now()
    HealthCheckRun.objects.bulk_create(
        HealthCheckRun(started_at=now - timedelta(hours=n), connection="primary", ok=True)
        for n in range(health_check.KEPT + 5)
    )
    health_check.prune()
    assert HealthCheckRun.objects.count() == health_check.KEPT


# The Mail Server page ----------------------------------------------------------------------


def test_the_page_saves_a_daily_schedule_and_queues_its_check(admin_client, primary):
    response = admin_client.post(
        SAVE_URL,
        {
            "health-frequency": "daily",
            "health-daily_at": "06:30",
            "health-recipient": "noc@example.com",
        },
    )
    assert response.status_code == 302 and response["Location"].endswith("#health-check")
    saved = HealthCheckSchedule.load()
    assert (saved.frequency, saved.daily_at, saved.recipient) == (
        "daily",
        time(6, 30),
        "noc@example.com",
    )
    (task,) = queued_checks()
    assert timezone.localtime(task.run_after).time() == time(6, 30)
    entry = AuditEntry.objects.get()
    assert entry.summary == "Saved health check: Health check daily at 06:30, to noc@example.com"


def test_an_invalid_time_or_recipient_is_explained_and_nothing_is_saved(admin_client, primary):
    response = admin_client.post(
        SAVE_URL,
        {"health-frequency": "daily", "health-daily_at": "25:99", "health-recipient": "not-mail"},
    )
    page = response.content.decode()
    assert "Enter a time as HH:MM" in page
    assert "Enter a valid e-mail address" in page
    assert HealthCheckSchedule.load().frequency == "off"
    assert queued_checks() == []


def test_the_time_is_needed_for_a_daily_check_only(admin_client, primary):
    response = admin_client.post(SAVE_URL, {"health-frequency": "daily", "health-daily_at": ""})
    assert "Enter the time of the daily check" in response.content.decode()
    assert HealthCheckSchedule.load().frequency == "off"

    response = admin_client.post(SAVE_URL, {"health-frequency": "hourly", "health-daily_at": ""})
    assert response.status_code == 302
    saved = HealthCheckSchedule.load()
    assert (saved.frequency, saved.daily_at) == ("hourly", time(6, 0))  # the time is kept


def test_the_page_shows_the_section_with_no_runs_yet(admin_client, primary):
    page = admin_client.get(PAGE_URL).content.decode()
    assert 'id="health-check"' in page
    assert "No health check has run yet." in page
    assert "Scheduled checks are off." in page


def test_the_history_strip_shows_the_last_30_runs_green_and_red(admin_client, primary):
    now = timezone.now()
    for n in range(35):
        HealthCheckRun.objects.create(
            started_at=now - timedelta(hours=35 - n),
            connection="primary",
            ok=n % 7 != 6,
            duration_ms=420 + n,
            error="" if n % 7 != 6 else f"Refused number {n}",
            error_code="" if n % 7 != 6 else "554",
            hint="" if n % 7 != 6 else "Ask the mail server's administrator.",
        )
    HealthCheckRun.objects.create(
        started_at=now,
        connection="primary",
        ok=False,
        duration_ms=2300,
        error="The server refused the login.",
        error_code="535",
        hint="Check the username and password.",
    )

    page = admin_client.get(PAGE_URL).content.decode()

    assert page.count('data-testid="health-run"') == 30
    assert page.count('class="health-run-line"') == 30
    assert page.count('data-ok="false"') == 6  # n = 6, 13, 20, 27, 34 and the last one
    assert "Last run failed" in page and "The server refused the login." in page
    assert "2.3 s" in page and "Check the username and password." in page


@pytest.mark.db_sensitive
def test_two_workers_waking_for_one_slot_run_it_once(primary):
    """The unique (connection, slot) row is the claim: the worker that loses the race to
    insert it sends nothing (checked with row-level races on PostgreSQL too)."""
    schedule()
    slot = health_check.ensure_scheduled()
    assert slot is not None
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def worker() -> None:
        try:
            barrier.wait(5)
            outcomes.append(health_check.run_scheduled(slot, now=slot))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["primary ok", "skipped: this slot already ran"]
    assert HealthCheckRun.objects.filter(scheduled_for=slot).count() == 1
    assert len(primary.messages) == 1


def test_a_slot_claimed_by_a_running_check_is_not_in_the_history(primary):
    HealthCheckRun.objects.create(
        started_at=timezone.now(), scheduled_for=timezone.now(), connection="primary"
    )
    assert health_check.history() == []
