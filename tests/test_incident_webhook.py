"""The incident webhook: signed, retried as tasks on 5xx and timeouts, never followed on redirects."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from sender import webhook as sender_webhook
from sender.models import Incident
from sender.webhook import post_incident_webhook
from tests.outbox_helpers import run_due_tasks, travel
from tests.servers.webhook_receiver import verify

pytestmark = pytest.mark.django_db(transaction=True)


def opened_incident() -> Incident:
    now = timezone.now()
    return Incident.objects.create(
        cause=Incident.Cause.PERMANENT,
        failing_since=now,
        opened_at=now,
        last_failure_at=now,
        error="The server refused the login.",
        error_code="535",
        hint="Check the username and password.",
        messages_affected=2,
    )


def announce_and_run(event: str = "incident.opened") -> Incident:
    incident = opened_incident()
    assert sender_webhook.announce(incident, event)
    run_due_tasks()
    return incident


def webhook_tasks() -> list[DBTaskResult]:
    return list(
        DBTaskResult.objects.filter(task_path=post_incident_webhook.module_path).order_by(
            "enqueued_at"
        )
    )


def test_the_post_is_json_about_the_incident(webhook):
    incident = announce_and_run()
    (post,) = webhook.received
    assert post.headers["Content-Type"] == "application/json"
    assert post.json["incident"]["id"] == incident.pk
    assert post.json["incident"]["error_code"] == "535"
    assert post.json["incident"]["messages_affected"] == 2
    assert post.json["console"].endswith("/admin/general-settings/mail-server/log/")


def test_the_signature_verifies_with_the_shared_secret(webhook):
    announce_and_run()
    (post,) = webhook.received
    timestamp = post.headers["X-Mailconfig-Timestamp"]
    expected = hmac.new(
        b"webhook-shared-secret", f"{timestamp}.".encode() + post.body, hashlib.sha256
    )
    assert post.headers["X-Mailconfig-Signature"] == "sha256=" + expected.hexdigest()
    assert post.verified


def test_a_changed_body_or_another_secret_does_not_verify(webhook):
    announce_and_run()
    (post,) = webhook.received
    tampered = json.dumps({**post.json, "event": "incident.closed"}).encode()
    assert not verify("webhook-shared-secret", post.headers, tampered)
    assert not verify("another-secret", post.headers, post.body)


def test_without_a_secret_the_post_is_unsigned(webhook, settings):
    settings.MAILCONFIG_ALERT_WEBHOOK_SECRET = ""
    announce_and_run()
    (post,) = webhook.received
    assert "X-Mailconfig-Signature" not in post.headers


def test_nothing_is_queued_without_a_webhook_url(settings):
    settings.MAILCONFIG_ALERT_WEBHOOK_URL = None
    assert not sender_webhook.announce(opened_incident(), "incident.opened")
    assert webhook_tasks() == []


def test_a_500_is_retried_later_as_a_new_task_not_at_once(webhook):
    webhook.statuses = [500]
    announce_and_run()
    assert len(webhook.received) == 1
    first, retry = webhook_tasks()
    assert first.return_value == "attempt 1 answered 500; retry queued"
    assert retry.status == "READY"
    assert 25 <= (retry.run_after - timezone.now()).total_seconds() <= 31

    travel(31)
    run_due_tasks()

    assert len(webhook.received) == 2
    assert all(post.verified for post in webhook.received)
    assert {post.headers["X-Mailconfig-Delivery"] for post in webhook.received} == {
        f"{Incident.objects.get().pk}-opened"
    }
    assert webhook_tasks()[-1].return_value.startswith("delivered")


def test_a_webhook_that_keeps_failing_is_given_up_after_the_last_retry(webhook):
    webhook.statuses = [503, 502, 500, 500]
    announce_and_run()
    for _ in range(3):
        travel(121)
        run_due_tasks()
    assert len(webhook.received) == 3  # the first POST and the two retries of the schedule
    assert webhook_tasks()[-1].return_value.endswith("given up")


def test_a_timeout_is_retried(webhook, settings):
    settings.MAILCONFIG_ALERT_WEBHOOK_TIMEOUT = 0.5
    webhook.delays = [3.0]  # the first POST gets no answer in time
    announce_and_run()
    assert "no complete answer within 0.5 s" in webhook_tasks()[0].return_value

    travel(31)
    run_due_tasks()
    assert len(webhook.received) == 2
    assert webhook_tasks()[-1].return_value.startswith("delivered")


def test_an_answer_that_trickles_is_stopped_at_the_time_limit_and_retried(webhook, settings):
    settings.MAILCONFIG_ALERT_WEBHOOK_TIMEOUT = 3.0
    webhook.answer = b'{"ok": true}'
    webhook.trickle = 2.0  # each byte within the read timeout; the whole answer takes 24 s
    started = time.monotonic()
    announce_and_run()
    assert time.monotonic() - started < 3.0 + 2 * webhook.trickle  # not the whole answer
    first, retry = webhook_tasks()
    assert first.return_value == "attempt 1 no complete answer within 3 s; retry queued"
    assert retry.status == "READY"


def test_an_answer_cut_short_is_retried(webhook):
    webhook.answer = b'{"ok": true}'
    webhook.cut_short = True  # announces 24 bytes, sends 12 and closes
    announce_and_run()
    first, retry = webhook_tasks()
    assert first.status == "SUCCESSFUL"  # the task ran to its end: no traceback
    assert first.return_value == "attempt 1 the answer was cut short after 12 bytes; retry queued"
    assert retry.status == "READY"


def test_a_client_error_is_not_retried(webhook):
    webhook.statuses = [404]
    announce_and_run()
    (task,) = webhook_tasks()
    assert task.return_value == "attempt 1 answered 404; given up"


def test_a_redirect_is_not_followed_nor_retried(webhook):
    webhook.statuses = [307]
    webhook.redirect_to = webhook.url + "/elsewhere"
    announce_and_run()
    assert len(webhook.received) == 1
    (task,) = webhook_tasks()
    assert "redirect" in task.return_value and task.return_value.endswith("given up")
