"""``/metrics``: Prometheus's text format, behind a bearer token, with totals that every
process shares and that outlive restarts and the Email Log's retention purge."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from sender.metrics_counters import DeliveryOutcome, count_outcomes, count_token_request
from sender.models import Attempt, Connection, Incident, Status, WorkerHeartbeat
from sender.retention import purge_email_log
from tests.factories import LOCAL_SMTP_ACCOUNT, store
from tests.log_rows import logged_message
from tests.outbox_helpers import run_due_tasks
from tests.test_api_transports import CLIENT_ID, GRAPH_VALUES, SECRET, TENANT

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "scrape-token-0123456789abcdefghij"
PERSONAL = ("bob@example.com", "carol@example.com", "Quarterly salary review", "alice@example.com")

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def metrics_on(queued_backend, settings):
    settings.MAILCONFIG_METRICS_TOKEN = TOKEN
    settings.MAILCONFIG_RETRY_SCHEDULE = [60.0]


def scrape(client) -> str:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return response.content.decode()


def values(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition, keyed by its name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return values(text).get((name, frozenset(labels.items())), 0.0)


def send(subject: str = "Quarterly salary review", to: str = "bob@example.com") -> None:
    mail.send_mail(subject, "Body", None, [to])
    run_due_tasks()


SMTP = {"connection": "primary", "transport": "SMTP (Basic)"}


# --- Access -------------------------------------------------------------------------


def test_metrics_are_off_unless_a_token_is_set(client, admin_client, settings):
    settings.MAILCONFIG_METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 404
    assert admin_client.get("/metrics").status_code == 404  # signing in does not turn them on


def test_a_scrape_without_the_token_is_refused(client, admin_client):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert admin_client.get("/metrics").status_code == 401  # a session is not a token
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401


def test_a_scrape_with_another_token_is_forbidden(client):
    for wrong in ("wrong", TOKEN[:-1], TOKEN + "x", TOKEN.upper()):
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {wrong}")
        assert response.status_code == 403, wrong
        assert b"mailconfig" not in response.content


def test_a_scrape_with_the_token_answers_for_the_pods_address_over_plain_http(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["mail.example.com"]
    response = client.get(
        "/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", HTTP_HOST="10.1.2.3:8000"
    )
    assert response.status_code == 200
    assert b"mailconfig_workers_alive" in response.content


def test_a_short_token_is_refused_at_start_up(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mailconfig.settings",
        "MAILCONFIG_DATA_DIR": str(tmp_path),
        "MAILCONFIG_METRICS_TOKEN": "short",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "MAILCONFIG_METRICS_TOKEN: (hidden) is not at least 24 characters." in result.stderr
    assert "short" not in result.stderr


# --- What the metrics say -------------------------------------------------------------


def test_messages_are_counted_by_status(client):
    logged_message(status=Status.SENT)
    logged_message(status=Status.SENT, subject="second")
    logged_message(status=Status.RETRYING, next_attempt_at=timezone.now() + timedelta(hours=1))
    text = scrape(client)
    assert value(text, "mailconfig_messages", status="sent") == 2
    assert value(text, "mailconfig_messages", status="retrying") == 1
    # Every status is there, also at zero, so a rate or an alert never sees a gap.
    assert ("mailconfig_messages", frozenset({("status", "failed")})) in values(text)


def test_sent_and_failed_totals_by_connection_and_transport(client, stored_smtp):
    send()
    send(subject="Second")
    stored_smtp.injections.data_reply = "550 5.7.1 Relaying denied"
    send(subject="Refused")
    text = scrape(client)
    assert value(text, "mailconfig_messages_sent_total", **SMTP) == 2
    assert value(text, "mailconfig_messages_failed_total", **SMTP) == 1
    assert value(text, "mailconfig_delivery_tries_total", **SMTP, outcome="sent") == 2
    assert value(text, "mailconfig_delivery_tries_total", **SMTP, outcome="permanent") == 1
    assert value(text, "mailconfig_delivery_try_duration_seconds_count", **SMTP) == 3
    assert value(text, "mailconfig_incidents_open", connection="primary") == 1


def test_a_try_that_is_retried_is_a_try_not_a_failed_message(client, stored_smtp):
    stored_smtp.injections.data_reply = "451 4.3.0 Please try again later"
    send()
    text = scrape(client)
    assert value(text, "mailconfig_delivery_tries_total", **SMTP, outcome="transient") == 1
    assert value(text, "mailconfig_messages_failed_total", **SMTP) == 0
    assert value(text, "mailconfig_messages", status="retrying") == 1


def test_the_totals_survive_the_email_logs_retention_purge(client, stored_smtp, settings):
    send()
    stored_smtp.injections.data_reply = "550 5.7.1 Relaying denied"
    send(subject="Refused")
    before = scrape(client)
    settings.MAILCONFIG_LOG_RETENTION_DAYS = 0
    assert purge_email_log(now=timezone.now() + timedelta(seconds=1)).messages_deleted == 2
    after = scrape(client)
    assert value(after, "mailconfig_messages", status="sent") == 0  # the log is empty ...
    for name in ("mailconfig_messages_sent_total", "mailconfig_messages_failed_total"):
        assert value(after, name, **SMTP) == value(before, name, **SMTP) == 1  # ... not the totals
    stored_smtp.injections.data_reply = None
    send(subject="After the purge")
    assert value(scrape(client), "mailconfig_messages_sent_total", **SMTP) == 2


def test_attempt_durations_fill_the_histograms_buckets(client):
    count_outcomes(
        DeliveryOutcome("backup", "Microsoft Graph", Attempt.Outcome.SENT, "sent", ms)
        for ms in (40, 300, 70_000)
    )
    text = scrape(client)
    graph = {"connection": "backup", "transport": "Microsoft Graph"}
    bucket = "mailconfig_delivery_try_duration_seconds_bucket"
    assert value(text, bucket, **graph, le="0.1") == 1
    assert value(text, bucket, **graph, le="0.5") == 2
    assert value(text, bucket, **graph, le="60.0") == 2
    assert value(text, bucket, **graph, le="+Inf") == 3
    assert value(text, "mailconfig_delivery_try_duration_seconds_sum", **graph) == 70.34


def test_a_try_cut_off_by_a_stopped_worker_counts_without_a_duration(client):
    count_outcomes([DeliveryOutcome("primary", "", Attempt.Outcome.PERMANENT, "failed")])
    text = scrape(client)
    unknown = {"connection": "primary", "transport": "unknown"}
    assert value(text, "mailconfig_messages_failed_total", **unknown) == 1
    assert value(text, "mailconfig_delivery_try_duration_seconds_count", **unknown) == 0


def test_a_batch_of_outcomes_costs_one_statement_per_transport(django_assert_num_queries):
    batch = [
        DeliveryOutcome("primary", "SMTP (Basic)", Attempt.Outcome.SENT, "sent", 120)
        for _ in range(100)
    ]
    count_outcomes(batch[:1])  # the transport's first outcome creates its row
    with django_assert_num_queries(1):
        count_outcomes(batch)


def test_the_oldest_waiting_message_is_measured_from_when_it_became_due(client):
    logged_message(status=Status.QUEUED, queued_at=timezone.now() - timedelta(minutes=10))
    due = timezone.now() - timedelta(minutes=3)
    logged_message(status=Status.RETRYING, queued_at=due - timedelta(hours=5), next_attempt_at=due)
    logged_message(
        status=Status.RETRYING,
        queued_at=timezone.now() - timedelta(days=1),
        next_attempt_at=timezone.now() + timedelta(hours=1),  # not waiting: not due yet
    )
    age = value(scrape(client), "mailconfig_oldest_waiting_message_age_seconds")
    assert 600 <= age < 660


def test_nothing_waits_when_all_is_delivered(client):
    logged_message(status=Status.SENT, queued_at=timezone.now() - timedelta(days=1))
    assert value(scrape(client), "mailconfig_oldest_waiting_message_age_seconds") == 0


def test_workers_alive_are_those_seen_recently_and_not_stopped(client, settings):
    settings.MAILCONFIG_WORKER_STALE_AFTER = 120
    now = timezone.now()
    for pid, seen, stopped in (
        (1, now, None),
        (2, now - timedelta(seconds=30), None),
        (3, now - timedelta(seconds=121), None),  # stale: killed
        (4, now, now),  # stopped gracefully
    ):
        WorkerHeartbeat.objects.create(
            host="mail-1", pid=pid, started_at=now, last_seen=seen, stopped_at=stopped
        )
    assert value(scrape(client), "mailconfig_workers_alive") == 2


def test_open_incidents_by_connection(client):
    now = timezone.now()
    for connection, closed in (("backup", None), ("primary", now)):
        Incident.objects.create(
            connection=connection,
            cause=Incident.Cause.PERMANENT,
            failing_since=now,
            opened_at=now,
            last_failure_at=now,
            closed_at=closed,
        )
    text = scrape(client)
    assert value(text, "mailconfig_incidents_open", connection="backup") == 1
    assert value(text, "mailconfig_incidents_open", connection="primary") == 0


def test_token_requests_are_counted_once_per_request_not_per_message(client, microsoft_fake):
    microsoft_fake.add_app(TENANT, CLIENT_ID, SECRET)
    store(**GRAPH_VALUES)
    send()
    send(subject="Second")  # the token is reused from MSAL's cache: no request
    text = scrape(client)
    graph = {"connection": "primary", "transport": "Microsoft Graph"}
    assert value(text, "mailconfig_messages_sent_total", **graph) == 2
    issued = {"provider": "microsoft", "grant": "client_credentials", "outcome": "issued"}
    assert value(text, "mailconfig_token_requests_total", **issued) == 1


def test_a_refused_token_request_is_counted_as_failed(client, microsoft_fake):
    microsoft_fake.add_app(TENANT, CLIENT_ID, "another-secret")
    store(**GRAPH_VALUES)
    send()
    failed = {"provider": "microsoft", "grant": "client_credentials", "outcome": "failed"}
    assert value(scrape(client), "mailconfig_token_requests_total", **failed) == 1


def test_nothing_personal_or_secret_is_in_the_output(client, stored_smtp, microsoft_fake):
    send(to="bob@example.com")
    stored_smtp.injections.data_reply = "550 5.1.1 <carol@example.com>: unknown user"
    send(to="carol@example.com")
    microsoft_fake.add_app(TENANT, CLIENT_ID, SECRET)
    store(**GRAPH_VALUES)
    send()
    text = scrape(client)
    for secret in (*PERSONAL, LOCAL_SMTP_ACCOUNT["password"], SECRET, TENANT, CLIENT_ID, TOKEN):
        assert secret not in text
    assert "550" not in text and "unknown user" not in text  # no server replies either


# --- The format -----------------------------------------------------------------------


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus; .ci/run does)")
    return subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )


def test_promtool_accepts_the_output_of_an_empty_installation(client):
    result = promtool_check(scrape(client))
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result


def test_promtool_accepts_the_output_with_every_metric_filled(client, stored_smtp):
    send()
    stored_smtp.injections.data_reply = "451 4.3.0 Please try again later"
    send(subject="Retried")
    count_outcomes([DeliveryOutcome(Connection.BACKUP, "", Attempt.Outcome.PERMANENT, "failed")])
    count_token_request("google", "service_account", issued=True)
    now = timezone.now()
    WorkerHeartbeat.objects.create(host="mail-1", pid=7, started_at=now, last_seen=now)
    text = scrape(client)
    families = {family.name for family in text_string_to_metric_families(text)}
    assert families == {
        "mailconfig_messages",
        "mailconfig_messages_sent",
        "mailconfig_messages_failed",
        "mailconfig_delivery_tries",
        "mailconfig_delivery_try_duration_seconds",
        "mailconfig_oldest_waiting_message_age_seconds",
        "mailconfig_incidents_open",
        "mailconfig_workers_alive",
        "mailconfig_token_requests",
    }
    result = promtool_check(text)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result


# --- Across processes -----------------------------------------------------------------


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="worker processes writing at once: run on PostgreSQL (make test does)",
)
@pytest.mark.db_sensitive
def test_two_worker_processes_add_to_the_same_totals_without_losing_a_count(
    client, tmp_path, smtp_server_factory
):
    from tests.factories import store_plain_smtp
    from tests.test_outbox_recovery import queue, start_worker, stop

    server = smtp_server_factory(security="plain")
    store_plain_smtp(server)
    rows = queue(40)
    workers = [start_worker(tmp_path, f"worker{i}", "--batch") for i in range(2)]
    try:
        for worker in workers:
            worker.wait(timeout=120)
    finally:
        for worker in workers:
            stop(worker)
    assert [worker.returncode for worker in workers] == [0, 0]
    text = scrape(client)  # this process (the web) reads what the workers counted
    plain = {"connection": "primary", "transport": "SMTP"}
    assert value(text, "mailconfig_messages_sent_total", **plain) == len(rows)
    assert value(text, "mailconfig_delivery_tries_total", **plain, outcome="sent") == len(rows)
    assert value(text, "mailconfig_delivery_try_duration_seconds_count", **plain) == len(rows)


def test_the_smtp_oauth_grants_requests_are_counted(client, admin_client, microsoft_fake, ca_file):
    from oauth.grant import StoredGrantTokenProvider
    from sender.errors import AuthenticationError
    from tests.oauth_helpers import authorize_microsoft, stored

    authorize_microsoft(admin_client, microsoft_fake, ca_file)  # the code's redemption
    StoredGrantTokenProvider(stored()).get_token(force=True)  # a refresh
    microsoft_fake.revoke_refresh_tokens()
    with pytest.raises(AuthenticationError):
        StoredGrantTokenProvider(stored()).get_token(force=True)  # a refused refresh
    text = scrape(client)
    ms = {"provider": "microsoft"}
    total = "mailconfig_token_requests_total"
    assert value(text, total, **ms, grant="authorization_code", outcome="issued") == 1
    assert value(text, total, **ms, grant="refresh_token", outcome="issued") == 1
    assert value(text, total, **ms, grant="refresh_token", outcome="failed") == 1
