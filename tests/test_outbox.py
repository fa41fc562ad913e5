"""The outbox: send_mail() stores and queues; a worker sends; the row tells what happened."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.mail import EmailMessage
from django.db import connection, transaction

from sender import outbox
from sender.models import Attempt, OutboxMessage, Status
from tests.factories import store_smtp
from tests.outbox_helpers import forget_worker_connection, pending_deliveries, run_due_tasks

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


def raw_body(row: OutboxMessage) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT body FROM sender_outboxmessage WHERE id = %s", [row.pk])
        return cursor.fetchone()[0]


def test_send_mail_queues_and_returns_without_connecting(stored_smtp):
    assert mail.send_mail("Reset", "Body", None, ["bob@example.com"]) == 1
    row = OutboxMessage.objects.get()
    assert row.status == Status.QUEUED and row.to == "bob@example.com"
    assert stored_smtp.connections == 0
    assert len(pending_deliveries()) == 1


def test_a_worker_sends_the_queued_message(stored_smtp):
    mail.send_mail("Reset", "Body", None, ["bob@example.com"])
    run_due_tasks()
    row = OutboxMessage.objects.get()
    assert row.status == Status.SENT and row.sent_at is not None
    assert stored_smtp.messages[0].rcpt_tos == ["bob@example.com"]
    assert stored_smtp.messages[0].message["Message-ID"] == row.message_id
    (attempt,) = Attempt.objects.all()
    assert attempt.outcome == Attempt.Outcome.SENT and attempt.transport == "SMTP (Basic)"


def test_the_stored_message_is_encrypted_in_the_database(stored_smtp):
    mail.send_mail("Reset", "https://example.com/reset/SECRET-LINK", None, ["bob@example.com"])
    raw = raw_body(OutboxMessage.objects.get())
    assert raw.startswith("gAAAA")  # a Fernet token
    assert "SECRET-LINK" not in raw and "bob@example.com" not in raw


def test_a_delivered_message_keeps_only_its_metadata(stored_smtp):
    mail.send_mail("Reset", "https://example.com/reset/SECRET-LINK", None, ["bob@example.com"])
    run_due_tasks()
    row = OutboxMessage.objects.get()
    assert raw_body(row) == "" and not outbox.has_body(row)
    assert row.subject == "Reset" and row.to == "bob@example.com"


def test_a_rolled_back_transaction_queues_nothing(stored_smtp):
    with pytest.raises(RuntimeError), transaction.atomic():
        mail.send_mail("Reset", "Body", None, ["bob@example.com"])
        raise RuntimeError("the request failed after sending")
    assert not OutboxMessage.objects.exists()
    assert pending_deliveries() == []
    run_due_tasks()
    assert stored_smtp.messages == []


def test_bcc_stays_in_the_envelope_only(stored_smtp):
    EmailMessage("S", "B", to=["to@example.com"], bcc=["hidden@example.com"]).send()
    run_due_tasks()
    received = stored_smtp.messages[0]
    assert "hidden@example.com" in received.rcpt_tos
    assert b"hidden@example.com" not in received.data
    assert OutboxMessage.objects.get().bcc_count == 1
