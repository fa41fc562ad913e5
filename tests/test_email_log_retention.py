"""Retention: finished messages leave the Email Log after MAILCONFIG_LOG_RETENTION_DAYS, and a
Failed message's kept content goes after MAILCONFIG_FAILED_BODY_DAYS."""

import os
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from sender.models import Attempt, OutboxMessage, Status
from sender.retention import purge_email_log
from tests.log_rows import attempt, logged_message

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.django_db


def days_ago(days: float):
    return timezone.now() - timedelta(days=days)


def remaining() -> set[str]:
    return set(OutboxMessage.objects.values_list("subject", flat=True))


def test_the_defaults_are_30_days_of_log_and_7_days_of_failed_content():
    from mailconfig import settings as project_settings

    assert project_settings.MAILCONFIG_LOG_RETENTION_DAYS == 30
    assert project_settings.MAILCONFIG_FAILED_BODY_DAYS == 7


def test_finished_messages_older_than_the_retention_are_deleted_with_their_attempts():
    old_sent = logged_message(status=Status.SENT, subject="old sent", queued_at=days_ago(31))
    attempt(old_sent)
    logged_message(status=Status.FAILED, subject="old failed", queued_at=days_ago(31))
    result = purge_email_log()
    assert remaining() == set()
    assert result.messages_deleted == 2
    assert not Attempt.objects.exists()


def test_messages_within_the_retention_stay():
    logged_message(status=Status.SENT, subject="recent", queued_at=days_ago(29))
    assert purge_email_log().messages_deleted == 0
    assert remaining() == {"recent"}


def test_messages_still_on_their_way_are_never_purged():
    for status in (Status.QUEUED, Status.SENDING, Status.RETRYING):
        logged_message(status=status, subject=status.value, queued_at=days_ago(60))
    purge_email_log()
    assert remaining() == {"queued", "sending", "retrying"}


def test_the_retention_follows_the_setting(settings):
    settings.MAILCONFIG_LOG_RETENTION_DAYS = 3
    logged_message(subject="four days", queued_at=days_ago(4))
    logged_message(subject="two days", queued_at=days_ago(2))
    purge_email_log()
    assert remaining() == {"two days"}


def test_a_failed_message_loses_its_content_after_the_failed_body_days():
    row = logged_message(status=Status.FAILED, subject="old failure", queued_at=days_ago(8))
    attempt(row, started_at=days_ago(8), outcome=Attempt.Outcome.PERMANENT)
    assert purge_email_log().bodies_dropped == 1
    row.refresh_from_db()
    assert row.body == ""
    assert remaining() == {"old failure"}  # the row stays in the log


def test_a_recent_failure_keeps_its_content_for_resend():
    row = logged_message(status=Status.FAILED, queued_at=days_ago(3))
    assert purge_email_log().bodies_dropped == 0
    row.refresh_from_db()
    assert row.body != ""


def test_a_failed_message_s_age_counts_from_its_last_attempt():
    """Queued long ago but resent and failed again yesterday: its content is still needed."""
    row = logged_message(status=Status.FAILED, queued_at=days_ago(10))
    attempt(row, started_at=days_ago(10), outcome=Attempt.Outcome.PERMANENT)
    attempt(row, started_at=days_ago(1), outcome=Attempt.Outcome.PERMANENT)
    purge_email_log()
    row.refresh_from_db()
    assert row.body != ""


def test_only_failed_messages_lose_their_content():
    row = logged_message(status=Status.RETRYING, queued_at=days_ago(9))
    purge_email_log()
    row.refresh_from_db()
    assert row.body != ""


def test_the_failed_body_days_follow_the_setting(settings):
    settings.MAILCONFIG_FAILED_BODY_DAYS = 1
    row = logged_message(status=Status.FAILED, queued_at=days_ago(2))
    purge_email_log()
    row.refresh_from_db()
    assert row.body == ""


def test_the_purge_command_says_what_it_removed():
    logged_message(status=Status.SENT, queued_at=days_ago(40))
    logged_message(status=Status.FAILED, queued_at=days_ago(10))
    out = StringIO()
    call_command("purge_email_log", stdout=out)
    assert out.getvalue().strip() == (
        "Email Log: deleted 1 message(s) older than 30 days; dropped the content of "
        "1 failed message(s) older than 7 days."
    )


def test_the_purge_command_is_idempotent():
    logged_message(status=Status.SENT, queued_at=days_ago(40))
    call_command("purge_email_log", stdout=StringIO())
    out = StringIO()
    call_command("purge_email_log", stdout=out)
    assert "deleted 0 message(s)" in out.getvalue()
    assert "content of 0 failed" in out.getvalue()


@pytest.mark.parametrize("name", ["MAILCONFIG_LOG_RETENTION_DAYS", "MAILCONFIG_FAILED_BODY_DAYS"])
def test_a_retention_that_is_not_a_number_of_days_stops_start_up_with_its_name(name, tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mailconfig.settings",
        "MAILCONFIG_DATA_DIR": str(tmp_path),
        name: "two weeks",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert f"{name}: 'two weeks' is not a whole number of days" in result.stderr


def test_retention_days_are_read_from_the_environment(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mailconfig.settings",
        "MAILCONFIG_DATA_DIR": str(tmp_path),
        "MAILCONFIG_LOG_RETENTION_DAYS": "90",
        "MAILCONFIG_FAILED_BODY_DAYS": "0",
    }
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.MAILCONFIG_LOG_RETENTION_DAYS, settings.MAILCONFIG_FAILED_BODY_DAYS)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.stdout.strip() == "90 0", result.stderr
