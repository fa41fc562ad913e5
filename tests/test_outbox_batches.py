"""Batches: a wake-up drains every due message, enqueueing is cheap, and a drain that
stops gives back what it has not started."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.utils import timezone

from sender import claims, drain, recovery
from sender.models import Attempt, Connection, OutboxMessage, Status
from tests.factories import store_smtp
from tests.outbox_helpers import forget_worker_connection, pending_deliveries, run_due_tasks, travel

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def queued_backend(settings):
    settings.EMAIL_BACKEND = "sender.backend.EmailBackend"
    settings.MAILCONFIG_DELIVERY = "queued"
    forget_worker_connection()
    yield
    forget_worker_connection()


@pytest.fixture
def stored_smtp(smtp_starttls, trust_test_ca):
    store_smtp(smtp_starttls, from_address="Alerts <alice@example.com>")
    return smtp_starttls


def messages(count: int) -> list[EmailMessage]:
    return [EmailMessage(f"Alert {i}", "Body", to=[f"user{i}@example.com"]) for i in range(count)]


def test_send_messages_stores_many_messages_with_one_wake_up(stored_smtp):
    assert get_connection().send_messages(messages(25)) == 25
    assert OutboxMessage.objects.filter(status=Status.QUEUED).count() == 25
    assert len(pending_deliveries()) == 1


def test_one_transaction_of_send_mail_calls_wakes_a_worker_once(stored_smtp):
    with transaction.atomic():
        for i in range(5):
            mail.send_mail(f"Alert {i}", "Body", None, [f"user{i}@example.com"])
        assert pending_deliveries() == []  # not before the commit
    assert len(pending_deliveries()) == 1


def test_a_waiting_wake_up_covers_the_messages_queued_after_it(stored_smtp):
    for i in range(5):
        mail.send_mail(f"Alert {i}", "Body", None, [f"user{i}@example.com"])
    assert len(pending_deliveries()) == 1
    assert run_due_tasks() == 1
    assert stored_smtp.message_count == 5
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {Status.SENT}


def test_a_backlog_larger_than_a_batch_wakes_another_worker(settings, stored_smtp):
    settings.MAILCONFIG_BATCH_SIZE = 4
    get_connection().send_messages(messages(10))
    # The first drain sends everything (one worker), leaving a wake-up for others to join.
    assert drain.drain() == "10 sent, 0 failed"
    assert len(pending_deliveries()) == 1
    assert stored_smtp.connections == 1


def test_a_batch_is_recorded_with_one_attempt_per_message(settings, stored_smtp):
    settings.MAILCONFIG_BATCH_SIZE = 10
    get_connection().send_messages(messages(10))
    run_due_tasks()
    assert Attempt.objects.filter(outcome=Attempt.Outcome.SENT).count() == 10
    row = OutboxMessage.objects.first()
    assert row.claimed_at is None and row.sending_through == "" and row.lease_until is None


def test_each_message_of_a_batch_keeps_its_own_outcome(settings, stored_smtp):
    stored_smtp.injections.rcpt_replies["user1@example.com"] = "550 5.1.1 No such user"
    stored_smtp.injections.rcpt_replies["user2@example.com"] = "451 4.3.0 Try again later"
    get_connection().send_messages(messages(4))
    run_due_tasks()
    statuses = dict(OutboxMessage.objects.values_list("subject", "status"))
    assert statuses == {
        "Alert 0": Status.SENT,
        "Alert 1": Status.FAILED,
        "Alert 2": Status.RETRYING,
        "Alert 3": Status.SENT,
    }
    (wake_up,) = pending_deliveries()  # the retry's
    assert wake_up.run_after == OutboxMessage.objects.get(subject="Alert 2").next_attempt_at


def test_a_drain_out_of_time_gives_back_the_messages_it_did_not_start(stored_smtp):
    get_connection().send_messages(messages(3))
    batch = claims.claim_batch(timezone.now(), 10)
    done = drain.deliver_batch(batch, until=time.monotonic())  # out of time already
    assert len(done) == 1  # a drain always makes progress: the first message is sent
    assert stored_smtp.message_count == 1
    rest = OutboxMessage.objects.exclude(pk=batch[0].pk)
    assert set(rest.values_list("status", "attempts", "lease_until")) == {(Status.QUEUED, 0, None)}
    # Another worker takes them at once, not after a lease.
    assert [row.pk for row in claims.claim_batch(timezone.now(), 10)] == [r.pk for r in batch[1:]]


def test_a_worker_told_to_stop_takes_no_new_message(monkeypatch, stored_smtp):
    get_connection().send_messages(messages(3))
    batch = claims.claim_batch(timezone.now(), 10)
    monkeypatch.setattr(drain, "_stop_requested", True)  # as SIGTERM sets it
    assert drain.deliver_batch(batch, until=time.monotonic() + 60) == []
    assert stored_smtp.message_count == 0
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {Status.QUEUED}
    assert drain.drain() == "0 sent, 0 failed"  # and claims nothing more
    assert stored_smtp.message_count == 0


def test_an_abandoned_attempt_is_logged_with_its_claim_time_and_connection(settings, stored_smtp):
    mail.send_mail("Alert", "Body", None, ["bob@example.com"])
    claimed_at = timezone.now() - timedelta(seconds=5)
    (row,) = claims.claim_batch(claimed_at, 1)
    # The worker had failed over to the backup when it was killed.
    OutboxMessage.objects.filter(pk=row.pk).update(sending_through=Connection.BACKUP)
    settings.MAILCONFIG_SEND_LEASE = 600  # changed since the claim: not what it started with
    travel(700)
    run_due_tasks()
    stopped = Attempt.objects.get(error_code="WORKER-STOPPED")
    assert stopped.started_at == claimed_at
    assert stopped.connection == Connection.BACKUP
    assert OutboxMessage.objects.get().status == Status.SENT


def test_a_lease_shorter_than_four_send_timeouts_is_warned_about(settings, caplog):
    settings.MAILCONFIG_SEND_TIMEOUT = 60
    settings.MAILCONFIG_SEND_LEASE = 120
    with caplog.at_level(logging.WARNING, logger="sender.recovery"):
        assert recovery.warn_if_lease_short()
    assert "MAILCONFIG_SEND_LEASE" in caplog.text and "240" in caplog.text
    settings.MAILCONFIG_SEND_LEASE = 300
    assert not recovery.warn_if_lease_short()
