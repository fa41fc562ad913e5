"""Mail workers' heartbeats, and the console that knows whether a worker runs: the Email
Log lists the workers; "No mail worker is running" shows on every page while mail waits
and none was seen lately, clears when one is back, and is announced on the webhook once
per outage by the web process itself."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from sender import heartbeats, worker_outage
from sender.models import Incident, OutboxMessage, Status, WorkerHeartbeat
from tests.outbox_helpers import forget_worker_connection, run_due_tasks
from tests.worker_processes import start_worker, stop, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

PAGE_URL = "/admin/general-settings/mail-server/"
LOG_URL = "/admin/general-settings/mail-server/log/"
BANNER = 'data-testid="no-worker-banner"'


@pytest.fixture(autouse=True)
def queued_backend(settings):
    settings.EMAIL_BACKEND = "sender.backend.EmailBackend"
    settings.MAILCONFIG_DELIVERY = "queued"
    forget_worker_connection()
    yield
    heartbeats.stop()  # this test process acted as a worker
    forget_worker_connection()


def queue(count: int) -> None:
    for i in range(count):
        mail.send_mail(f"Alert {i}", "Body", None, [f"user{i}@example.com"])


def worker_seen(seconds_ago: float, *, host: str = "mail-1", stopped: bool = False) -> None:
    """A worker's row as a worker on ``host`` left it ``seconds_ago``."""
    seen = timezone.now() - timedelta(seconds=seconds_ago)
    WorkerHeartbeat.objects.create(
        host=host,
        pid=4242,
        started_at=seen - timedelta(hours=1),
        last_seen=seen,
        stopped_at=seen if stopped else None,
    )


# The banner --------------------------------------------------------------------------


def test_no_banner_while_a_worker_was_seen_within_the_stale_time(admin_client):
    worker_seen(100)  # under the default 120 s
    queue(2)
    assert BANNER not in admin_client.get(PAGE_URL).content.decode()


def test_the_banner_says_how_many_wait_since_when_and_how_to_start_a_worker(admin_client):
    worker_seen(121)
    queue(2)
    oldest = OutboxMessage.objects.order_by("queued_at").first().queued_at
    page = admin_client.get(PAGE_URL).content.decode()
    assert BANNER in page
    assert "No mail worker is running" in page
    assert '2 messages waiting, the oldest since <span class="text-nowrap">' in page
    assert f"{oldest:%Y-%m-%d %H:%M}</span>" in page
    assert "a worker was last seen" in page
    assert "<code>make run</code>" in page and "manage.py db_worker" in page


def test_the_banner_shows_on_every_console_page(admin_client):
    queue(1)  # and no worker was ever seen
    for url in (PAGE_URL, LOG_URL, "/admin/general-settings/mail-server/backup/"):
        assert BANNER in admin_client.get(url).content.decode(), url


def test_the_stale_time_is_a_setting(admin_client, settings):
    settings.MAILCONFIG_WORKER_STALE_AFTER = 30
    worker_seen(31)
    queue(1)
    assert BANNER in admin_client.get(PAGE_URL).content.decode()


def test_a_worker_that_stopped_gracefully_does_not_count_as_running(admin_client):
    worker_seen(5, stopped=True)
    queue(1)
    assert BANNER in admin_client.get(PAGE_URL).content.decode()


def test_no_banner_when_no_mail_waits(admin_client, plain_smtp):
    queue(1)
    run_due_tasks()  # sent
    assert OutboxMessage.objects.get().status == Status.SENT
    assert BANNER not in admin_client.get(PAGE_URL).content.decode()


def test_a_retry_counts_as_waiting_only_once_it_is_due(admin_client):
    queue(1)
    later = timezone.now() + timedelta(minutes=5)
    OutboxMessage.objects.update(status=Status.RETRYING, next_attempt_at=later)
    assert BANNER not in admin_client.get(PAGE_URL).content.decode()
    OutboxMessage.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert BANNER in admin_client.get(PAGE_URL).content.decode()


def test_the_banner_clears_by_itself_when_a_worker_is_back(admin_client):
    queue(1)
    assert BANNER in admin_client.get(PAGE_URL).content.decode()
    heartbeats.start()
    assert BANNER not in admin_client.get(PAGE_URL).content.decode()


def test_the_banner_is_not_shown_to_users_without_the_permission(client, django_user_model):
    queue(1)
    client.force_login(django_user_model.objects.create_user("visitor", password="pass-12345"))
    assert BANNER not in client.get(PAGE_URL).content.decode()


def test_the_check_is_one_query_while_a_worker_runs(django_assert_num_queries):
    worker_seen(1)
    queue(50)
    with django_assert_num_queries(1):
        assert worker_outage.alarm() is None


# The incident and its webhook ------------------------------------------------------------


def test_the_outage_is_one_incident_posted_once_however_many_pages_see_it(admin_client, webhook):
    queue(3)
    for _ in range(3):
        assert BANNER in admin_client.get(PAGE_URL).content.decode()
    outage = Incident.objects.get()
    assert outage.cause == Incident.Cause.NO_WORKER and outage.is_open
    assert outage.connection == "" and outage.messages_affected == 3
    (post,) = webhook.received  # posted by the web process: no worker runs to post it
    assert post.verified and post.json["event"] == "incident.opened"
    assert post.json["incident"]["cause"] == "no_worker"
    assert post.json["incident"]["error_code"] == "NO-WORKER"
    assert "manage.py db_worker" in post.json["incident"]["hint"]
    assert post.headers["X-Mailconfig-Delivery"] == f"{outage.pk}-opened"


def test_a_worker_back_closes_the_incident_and_the_webhook_says_so(
    admin_client, webhook, plain_smtp
):
    queue(1)
    admin_client.get(PAGE_URL)
    heartbeats.start()
    outage = Incident.objects.get()
    assert not outage.is_open and outage.closed_by.startswith("Worker ")
    run_due_tasks()  # the closing is posted as a task, like any incident's: a worker runs now
    assert webhook.events() == ["incident.opened", "incident.closed"]


def test_the_next_outage_is_a_new_incident(admin_client, webhook):
    queue(1)
    admin_client.get(PAGE_URL)
    heartbeats.start()
    heartbeats.stop()
    WorkerHeartbeat.objects.update(last_seen=timezone.now() - timedelta(minutes=5))
    admin_client.get(PAGE_URL)
    assert Incident.objects.filter(cause=Incident.Cause.NO_WORKER).count() == 2
    assert webhook.events() == ["incident.opened", "incident.opened"]


def test_a_receiver_that_does_not_answer_holds_the_page_no_longer_than_the_webhook_timeout(
    admin_client, webhook, settings
):
    settings.MAILCONFIG_ALERT_WEBHOOK_TIMEOUT = 1.0
    webhook.delays.append(5.0)
    queue(1)
    started = time.monotonic()
    page = admin_client.get(PAGE_URL)
    assert page.status_code == 200 and BANNER in page.content.decode()
    assert time.monotonic() - started < 4.0
    assert len(webhook.received) == 1
    admin_client.get(PAGE_URL)
    assert len(webhook.received) == 1  # not retried by the next page


def test_the_no_worker_incident_has_its_own_banner_not_the_delivery_one(admin_client):
    queue(1)
    page = admin_client.get(PAGE_URL).content.decode()
    assert BANNER in page and 'data-testid="incident-banner"' not in page


# The Email Log's workers ------------------------------------------------------------------


def test_the_email_log_lists_the_running_workers_and_their_hosts(admin_client):
    worker_seen(3, host="mail-1")
    worker_seen(4, host="mail-2")
    worker_seen(400, host="mail-3")  # stopped long ago
    page = admin_client.get(LOG_URL).content.decode()
    assert "2 running on 2 hosts" in page
    assert page.count('data-testid="worker-row"') == 2
    assert "mail-1" in page and "mail-2" in page and "mail-3" not in page


def test_without_workers_the_email_log_says_when_one_was_last_seen(admin_client):
    worker_seen(400)
    page = admin_client.get(LOG_URL).content.decode()
    assert 'data-testid="workers-empty"' in page and "One was last seen" in page


# A worker's own row ---------------------------------------------------------------------


def test_a_worker_records_its_host_pid_and_start_then_its_stop():
    row = heartbeats.start()
    assert row.pid > 0 and row.host and row.started_at == row.last_seen
    heartbeats.stop()
    row.refresh_from_db()
    assert row.stopped_at is not None


def test_rows_not_seen_for_a_day_are_deleted_when_a_worker_starts():
    worker_seen(timedelta(days=1, minutes=1).total_seconds(), host="gone")
    worker_seen(3600, host="recent")
    heartbeats.start()
    hosts = set(WorkerHeartbeat.objects.values_list("host", flat=True))
    assert "gone" not in hosts and "recent" in hosts


def test_sending_outside_a_worker_counts_nothing(plain_smtp):
    queue(1)
    run_due_tasks()
    assert not WorkerHeartbeat.objects.exists()


# Real worker processes --------------------------------------------------------------------


def test_a_worker_process_beats_counts_what_it_sends_and_records_its_stop(tmp_path, plain_smtp):
    # A stale time of 2 s makes the worker beat every 0.5 s.
    worker = start_worker(tmp_path, "worker", MAILCONFIG_WORKER_STALE_AFTER="2")
    try:
        wait_for(WorkerHeartbeat.objects.exists, 60, "the worker's first heartbeat")
        queue(3)
        wait_for(lambda: plain_smtp.message_count == 3, 60, "the worker to send")
        row = WorkerHeartbeat.objects.get()
        wait_for(lambda: WorkerHeartbeat.objects.get().messages_sent == 3, 10, "the count")
        first_seen = WorkerHeartbeat.objects.get().last_seen
        wait_for(lambda: WorkerHeartbeat.objects.get().last_seen > first_seen, 10, "an idle beat")
        assert row.pid == worker.pid and row.stopped_at is None
    finally:
        stop(worker)
    assert worker.returncode == 0
    assert WorkerHeartbeat.objects.get().stopped_at is not None


@pytest.mark.db_sensitive
def test_two_workers_each_keep_their_own_row_fresh(tmp_path, plain_smtp):
    env = {"MAILCONFIG_WORKER_STALE_AFTER": "2"}
    workers = [start_worker(tmp_path, f"worker{i}", **env) for i in range(2)]
    try:
        wait_for(lambda: WorkerHeartbeat.objects.count() == 2, 60, "both workers' heartbeats")
        assert {row.pid for row in WorkerHeartbeat.objects.all()} == {w.pid for w in workers}
        queue(20)
        wait_for(lambda: plain_smtp.message_count == 20, 60, "the workers to send")
        wait_for(
            lambda: sum(WorkerHeartbeat.objects.values_list("messages_sent", flat=True)) == 20,
            10,
            "the counts",
        )
        before = dict(WorkerHeartbeat.objects.values_list("pid", "last_seen"))
        wait_for(
            lambda: all(row.last_seen > before[row.pid] for row in WorkerHeartbeat.objects.all()),
            10,
            "both to beat again",
        )
        assert len(heartbeats.running()) == 2
    finally:
        for worker in workers:
            stop(worker)
    assert heartbeats.running() == []
    assert WorkerHeartbeat.objects.filter(stopped_at__isnull=True).count() == 0
