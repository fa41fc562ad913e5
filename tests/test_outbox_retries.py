"""Retries that know the difference: temporary failures come back later, permanent ones fail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from sender.models import Attempt, OutboxMessage, Status
from sender.smtp_replies import SMTP_REPLIES
from sender.transports.graph import MAIL_SEND_HINT
from tests.factories import store
from tests.outbox_helpers import (
    pending_deliveries,
    run_due_tasks,
    travel,
)
from tests.servers.smtp_server import refused_port
from tests.test_api_transports import CLIENT_ID, GRAPH_VALUES, SECRET, TENANT

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def schedule(queued_backend, settings):
    settings.MAILCONFIG_RETRY_SCHEDULE = [60.0, 300.0, 900.0]


@pytest.fixture
def graph(microsoft_fake):
    microsoft_fake.add_app(TENANT, CLIENT_ID, SECRET)
    store(**GRAPH_VALUES)
    return microsoft_fake


def send_one() -> OutboxMessage:
    mail.send_mail("Alert", "Body", None, ["bob@example.com"])
    run_due_tasks()
    return OutboxMessage.objects.get()


def seconds_until(moment) -> float:
    return (moment - timezone.now()).total_seconds()


# Temporary failures ---------------------------------------------------------------


def test_an_smtp_4xx_is_retried_after_the_first_delay_of_the_schedule(stored_smtp):
    stored_smtp.injections.data_reply = "451 4.3.0 Please try again later"
    row = send_one()
    assert row.status == Status.RETRYING and row.attempts == 1
    assert 55 <= seconds_until(row.next_attempt_at) <= 60 * 1.2 + 1
    (task,) = pending_deliveries()
    assert task.run_after == row.next_attempt_at
    assert row.tries.get().outcome == Attempt.Outcome.TRANSIENT
    assert row.last_error_code == "451"


def test_a_retry_is_not_tried_before_its_time(stored_smtp):
    stored_smtp.injections.data_reply = "451 4.3.0 Please try again later"
    send_one()
    stored_smtp.injections.data_reply = None
    travel(50)
    run_due_tasks()
    assert OutboxMessage.objects.get().status == Status.RETRYING
    assert stored_smtp.message_count == 0


def test_a_retried_message_is_delivered_once_with_the_same_message_id(stored_smtp):
    stored_smtp.injections.data_reply = "451 4.3.0 Please try again later"
    row = send_one()
    stored_smtp.injections.data_reply = None
    travel(75)
    run_due_tasks()
    row.refresh_from_db()
    assert row.status == Status.SENT and row.attempts == 2
    assert [m.message["Message-ID"] for m in stored_smtp.messages] == [row.message_id]


def test_the_delays_follow_the_schedule_then_the_message_fails(stored_smtp):
    stored_smtp.injections.data_reply = "451 4.3.0 Please try again later"
    row = send_one()
    delays = []
    while row.status == Status.RETRYING:
        delays.append(seconds_until(row.next_attempt_at))
        travel(delays[-1] + 1)
        run_due_tasks()
        row.refresh_from_db()
    assert row.status == Status.FAILED and row.attempts == 4
    for delay, planned in zip(delays, [60, 300, 900], strict=True):
        assert planned - 2 <= delay <= planned * 1.2 + 1  # jitter only ever adds
    assert pending_deliveries() == []


def test_a_refused_connection_is_retried(trust_test_ca):
    store(server_name="127.0.0.1", port=refused_port(), security="none", username="")
    row = send_one()
    assert row.status == Status.RETRYING and row.last_error_code == "ECONNREFUSED"


def test_a_421_busy_server_is_retried(stored_smtp):
    stored_smtp.injections.mail_from_reply = "421 4.7.0 Too many connections, try later"
    assert send_one().status == Status.RETRYING


# Permanent failures ---------------------------------------------------------------


def test_a_permanent_535_fails_after_one_attempt_with_the_hint(stored_smtp):
    stored_smtp.injections.auth_reply = "535 5.7.8 Username and Password not accepted"
    row = send_one()
    assert row.status == Status.FAILED and row.attempts == 1
    hint = next(r.hint for r in SMTP_REPLIES if r.code == 535 and r.contains == "5.7.8")
    assert row.last_error_hint == hint
    (attempt,) = row.tries.all()
    assert attempt.outcome == Attempt.Outcome.PERMANENT and attempt.hint == hint
    assert pending_deliveries() == []


def test_a_refused_recipient_fails_at_once(stored_smtp):
    stored_smtp.injections.rcpt_replies["bob@example.com"] = "550 5.1.1 No such user here"
    row = send_one()
    assert row.status == Status.FAILED and row.attempts == 1
    assert "recipient" in row.last_error_hint


def test_nothing_configured_fails_with_the_way_to_fix_it():
    row = send_one()
    assert row.status == Status.FAILED
    assert "/admin/general-settings/mail-server/" in row.last_error_hint


# Microsoft Graph --------------------------------------------------------------------


def test_graph_429_is_not_tried_again_before_its_retry_after(graph):
    graph.fail_next(
        "graph_send", 429, {"error": {"code": "TooManyRequests"}}, {"Retry-After": "3600"}
    )
    row = send_one()
    assert graph.requests["graph_send"] == 1  # the worker did not wait and retry in place
    assert row.status == Status.RETRYING
    assert seconds_until(row.next_attempt_at) >= 3600 - 2
    (task,) = pending_deliveries()
    assert task.run_after == row.next_attempt_at
    travel(3500)
    run_due_tasks()
    assert graph.requests["graph_send"] == 1
    travel(200)
    run_due_tasks()
    row.refresh_from_db()
    assert row.status == Status.SENT and graph.requests["graph_send"] == 2


def test_a_short_retry_after_does_not_shorten_the_schedule(graph):
    graph.fail_next(
        "graph_send", 503, {"error": {"code": "ServiceNotAvailable"}}, {"Retry-After": "1"}
    )
    row = send_one()
    assert row.status == Status.RETRYING and graph.requests["graph_send"] == 1
    assert seconds_until(row.next_attempt_at) >= 55


def test_graph_500_is_retried(graph):
    graph.fail_next("graph_send", 500, {"error": {"code": "UnknownError", "message": "Oops"}})
    assert send_one().status == Status.RETRYING


def test_graph_403_fails_at_once_with_the_permission_hint(graph):
    graph.fail_next(
        "graph_send", 403, {"error": {"code": "ErrorAccessDenied", "message": "Access is denied."}}
    )
    row = send_one()
    assert row.status == Status.FAILED and row.last_error_hint == MAIL_SEND_HINT


def test_a_token_endpoint_that_is_down_is_retried(graph):
    graph.fail_next("token", 503, {"error": "temporarily_unavailable"}, count=5)
    row = send_one()
    assert row.status == Status.RETRYING, row.last_error


def test_a_wrong_client_secret_fails_at_once(graph):
    store(api_client_secret="not-the-secret")
    row = send_one()
    assert row.status == Status.FAILED and row.last_error_code == "AADSTS7000215"
    assert row.last_error_hint


def test_retry_times_are_spread(stored_smtp):
    stored_smtp.injections.data_reply = "451 4.3.0 Please try again later"
    for i in range(8):
        mail.send_mail(f"Alert {i}", "Body", None, ["bob@example.com"])
    run_due_tasks()
    times = {row.next_attempt_at for row in OutboxMessage.objects.all()}
    assert len(times) == 8
    assert max(times) - min(times) > timedelta(seconds=1)
