"""A worker (a real ``manage.py db_worker`` process) rides out database faults: a write
lock held past its busy timeout, a terminated PostgreSQL connection; and it stops for
its supervisor when its SQLite file is replaced under it.

Times: the lock test gives the worker a SQLite busy timeout of 1 s and holds the lock
five times as long. Before the fix the worker died at the first timeout (the report's
20 s lock against the default 20 s busy timeout); the ratio is what matters, not the
60 s of the report, and the test takes about 15 s instead of 70.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest
from django.core import mail
from django.db import connection, transaction
from django.db.utils import OperationalError, ProgrammingError

from sender.models import OutboxMessage, Status
from sender.worker_faults import (
    DATABASE_FILE_REPLACED,
    DatabaseOutage,
    run_through_database_faults,
)
from tests.worker_processes import start_worker, stop, wait_for, worker_log

pytestmark = pytest.mark.django_db(transaction=True)

ON_POSTGRES = os.environ.get("DATABASE_URL", "").startswith("postgres")
sqlite_only = pytest.mark.skipif(ON_POSTGRES, reason="about SQLite's lock and file")
postgres_only = pytest.mark.skipif(
    not ON_POSTGRES, reason="about PostgreSQL connections (make test runs db_sensitive there)"
)

BUSY_TIMEOUT = 1.0
UNAVAILABLE = "The database is unavailable"
BACK = "The database is available again"


@pytest.fixture(autouse=True)
def queued_backend(settings):
    settings.EMAIL_BACKEND = "sender.backend.EmailBackend"
    settings.MAILCONFIG_DELIVERY = "queued"


def queue(count: int, subject: str = "Alert") -> list[OutboxMessage]:
    for i in range(count):
        mail.send_mail(f"{subject} {i}", "Body", None, [f"user{i}@example.com"])
    return list(OutboxMessage.objects.filter(subject__startswith=subject).order_by("pk"))


def received_ids(server) -> Counter[str]:
    return Counter(m.message["Message-ID"] for m in server.messages)


def all_sent() -> bool:
    return not OutboxMessage.objects.exclude(status=Status.SENT).exists()


def started(tmp_path: Path, name: str = "worker") -> bool:
    return "Starting worker" in worker_log(tmp_path, name)


@sqlite_only
def test_a_worker_outlives_a_write_lock_held_past_its_busy_timeout_and_then_sends(
    tmp_path, plain_smtp
):
    worker = start_worker(tmp_path, "worker", TEST_SQLITE_BUSY_TIMEOUT=str(BUSY_TIMEOUT))
    try:
        wait_for(lambda: started(tmp_path), 60, "the worker to start")
        with transaction.atomic():  # BEGIN IMMEDIATE: this test holds the write lock
            rows = queue(3)
            time.sleep(5 * BUSY_TIMEOUT)
        assert worker.poll() is None, worker_log(tmp_path, "worker")
        wait_for(all_sent, 60, "the queued mail to be sent once the lock is gone")
        assert worker.poll() is None
    finally:
        stop(worker)
    assert received_ids(plain_smtp) == {row.message_id: 1 for row in rows}
    log = worker_log(tmp_path, "worker")
    # Once when it went, once when it came back: not at every try.
    assert log.count(UNAVAILABLE) == 1, log
    assert "database is locked" in log
    assert log.count(BACK) == 1, log
    assert "Traceback" not in log


@postgres_only
@pytest.mark.db_sensitive
def test_a_worker_whose_connection_is_terminated_reconnects_and_sends(tmp_path, plain_smtp):
    worker = start_worker(tmp_path, "worker")
    try:
        wait_for(lambda: started(tmp_path), 60, "the worker to start")
        first = queue(1, "Before")
        wait_for(all_sent, 60, "the first message (the worker is connected)")
        with connection.cursor() as cursor:
            # The test database is this test's alone: every other session is the worker's.
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        wait_for(lambda: BACK in worker_log(tmp_path, "worker"), 30, "the worker to reconnect")
        rows = queue(3, "After")
        wait_for(all_sent, 60, "the mail queued after the fault to be sent")
        assert worker.poll() is None
    finally:
        stop(worker)
    assert received_ids(plain_smtp) == {row.message_id: 1 for row in first + rows}
    log = worker_log(tmp_path, "worker")
    assert log.count(UNAVAILABLE) == 1 and log.count(BACK) == 1, log
    assert "terminating connection" in log or "closed" in log, log


def copy_test_database(to: Path) -> None:
    """A consistent copy of the test database (SQLite's backup API), as a restored file."""
    source = sqlite3.connect(connection.settings_dict["NAME"])
    target = sqlite3.connect(to)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


@sqlite_only
def test_a_worker_whose_sqlite_file_is_replaced_stops_and_its_restart_sends_the_new_mail(
    tmp_path, plain_smtp
):
    path = tmp_path / "db.sqlite3"
    copy_test_database(path)  # the configuration, nothing queued
    env = {"DATABASE_URL": f"sqlite:///{path}"}
    worker = start_worker(tmp_path, "worker", **env)
    try:
        wait_for(lambda: started(tmp_path), 60, "the worker to start")
        (row,) = queue(1)
        copy_test_database(tmp_path / "restored.sqlite3")  # with the message queued
        os.replace(tmp_path / "restored.sqlite3", path)
        assert worker.wait(timeout=30) == DATABASE_FILE_REPLACED
    finally:
        stop(worker)
    log = worker_log(tmp_path, "worker")
    assert f"The database file {path} was replaced by another file" in log, log
    assert log.count("was replaced") == 1

    restarted = start_worker(tmp_path, "restarted", **env)  # what supervision does
    try:
        wait_for(lambda: plain_smtp.message_count == 1, 60, "the restarted worker to send")
    finally:
        stop(restarted)
    assert received_ids(plain_smtp) == {row.message_id: 1}


# The waiting itself, without processes ------------------------------------------------


@pytest.mark.django_db(transaction=False)
def test_the_wait_doubles_from_one_second_to_thirty_and_starts_over_once_the_database_works():
    failures = iter([OperationalError("database is locked")] * 7 + [None])
    waits: list[float] = []

    def start() -> None:
        failure = next(failures)
        if failure is not None:
            raise failure

    ran: list[bool] = []
    outage = DatabaseOutage()
    run_through_database_faults(start, lambda: ran.append(True), outage=outage, sleep=waits.append)
    assert waits == [1, 2, 4, 8, 16, 30, 30]
    assert ran == [True] and not outage.ongoing and outage.next_wait == 1


@pytest.mark.django_db(transaction=False)
def test_an_error_that_waiting_cannot_mend_stops_the_worker():
    def start() -> None:
        raise ProgrammingError("no such table: sender_outboxmessage")

    with pytest.raises(ProgrammingError):
        run_through_database_faults(start, lambda: None, sleep=pytest.fail)
