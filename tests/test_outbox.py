"""The outbox: send_mail() stores and queues; a worker sends; the row tells what happened."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core import mail
from django.core.mail import EmailMessage
from django.core.management import call_command
from django.db import connection, transaction
from django.urls import reverse

from sender import outbox
from sender.models import Attempt, OutboxMessage, Status
from tests.factories import smtp_basic_post, store, store_smtp
from tests.outbox_helpers import pending_deliveries, run_due_tasks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("queued_backend")]


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


def test_every_message_gets_a_message_id_when_queued(stored_smtp):
    mail.send_mail("Reset", "Body", None, ["bob@example.com"])
    row = OutboxMessage.objects.get()
    assert row.message_id.startswith("<") and row.message_id.endswith(">")


def test_a_message_id_given_by_the_caller_is_kept(stored_smtp):
    EmailMessage(
        "S", "B", to=["to@example.com"], headers={"Message-ID": "<given@example.com>"}
    ).send()
    run_due_tasks()
    assert OutboxMessage.objects.get().message_id == "<given@example.com>"
    assert stored_smtp.messages[0].message["Message-ID"] == "<given@example.com>"


def test_the_server_receives_exactly_the_message_that_was_queued(stored_smtp):
    item = EmailMessage(
        "Prüfbericht ✓", "Zeilen\nFrom the start\n.dot", to=["Zoë <zoe@example.com>"]
    )
    item.attach("daten.txt", "ä,ö\n", "text/plain")
    row = outbox.enqueue(item)
    queued = outbox.stored_body(row).mime
    run_due_tasks()
    assert stored_smtp.messages[0].data.replace(b"\r\n", b"\n") == queued.replace(b"\r\n", b"\n")


def test_the_from_address_saved_by_send_time_fills_a_message_queued_before_any(
    smtp_starttls, trust_test_ca
):
    mail.send_mail("Early", "Body", None, ["bob@example.com"])  # nothing is configured yet
    store_smtp(smtp_starttls, from_address="Alerts <alice@example.com>")
    run_due_tasks()
    received = smtp_starttls.messages[0]
    assert received.mail_from == "alice@example.com"
    assert received.message["From"] == "Alerts <alice@example.com>"


def test_a_worker_reuses_its_connection_across_messages(stored_smtp):
    for i in range(5):
        mail.send_mail(f"Alert {i}", "Body", None, [f"user{i}@example.com"])
    run_due_tasks()
    assert stored_smtp.message_count == 5
    assert stored_smtp.connections == 1


def test_a_new_save_gives_the_worker_a_new_connection(stored_smtp, smtp_server_factory):
    mail.send_mail("one", "B", None, ["bob@example.com"])
    run_due_tasks()
    other = smtp_server_factory(security="plain")
    store(port=other.port, security="none", username="", password="")
    mail.send_mail("two", "B", None, ["bob@example.com"])
    run_due_tasks()
    assert stored_smtp.message_count == 1 and other.message_count == 1


def test_after_an_error_the_next_message_opens_a_new_connection(stored_smtp):
    stored_smtp.injections.rcpt_replies["refused@example.com"] = "550 5.1.1 No such user"
    mail.send_mail("one", "B", None, ["refused@example.com"])
    mail.send_mail("two", "B", None, ["bob@example.com"])
    run_due_tasks()
    assert stored_smtp.message_count == 1
    assert stored_smtp.connections == 2


def test_mail_admins_is_queued_for_the_admin_mail_address(stored_smtp):
    store(admin_address="admin@example.com")
    mail.mail_admins("Disk full", "Please look")
    assert stored_smtp.connections == 0
    run_due_tasks()
    assert stored_smtp.messages[0].rcpt_tos == ["admin@example.com"]


def test_a_server_errors_report_is_queued_not_sent_in_the_request(
    client, admin_user, settings, stored_smtp
):
    store(admin_address="alerts@example.com")
    # An operator's settings override that lacks the hosts: the form post fails with a 500.
    settings.MAILCONFIG_AZURE_ENVIRONMENTS = {"azure": {"label": "Azure Cloud"}}
    client.force_login(admin_user)
    client.raise_request_exception = False
    response = client.post(reverse("settings_app:mail_server"), smtp_basic_post())
    assert response.status_code == 500
    report = OutboxMessage.objects.get()
    assert report.to == "alerts@example.com" and report.status == Status.QUEUED
    assert stored_smtp.connections == 0  # nothing was sent while the request ran
    assert len(pending_deliveries()) == 1


def test_sendtestemail_queues_unless_immediate(stored_smtp):
    call_command("sendtestemail", "bob@example.com", stdout=StringIO())
    assert stored_smtp.connections == 0 and OutboxMessage.objects.count() == 1
    call_command("sendtestemail", "--immediate", "carol@example.com", stdout=StringIO())
    assert stored_smtp.messages[0].rcpt_tos == ["carol@example.com"]
    assert OutboxMessage.objects.count() == 1  # the immediate one bypassed the outbox


def test_immediate_delivery_sends_within_send_mail(settings, stored_smtp):
    settings.MAILCONFIG_DELIVERY = "immediate"
    mail.send_mail("Now", "Body", None, ["bob@example.com"])
    assert stored_smtp.message_count == 1
    assert not OutboxMessage.objects.exists()


# The Email Log's actions ------------------------------------------------------


def fail_permanently(server) -> OutboxMessage:
    server.injections.rcpt_replies["bob@example.com"] = "550 5.1.1 No such user"
    mail.send_mail("Reset", "Body", None, ["bob@example.com"])
    run_due_tasks()
    server.injections.rcpt_replies.clear()
    row = OutboxMessage.objects.get()
    assert row.status == Status.FAILED
    return row


def test_a_failed_message_keeps_its_encrypted_body(stored_smtp):
    row = fail_permanently(stored_smtp)
    assert outbox.has_body(row) and raw_body(row).startswith("gAAAA")


def test_requeue_sends_the_same_message_again(stored_smtp):
    row = fail_permanently(stored_smtp)
    outbox.requeue(row)
    row.refresh_from_db()
    assert row.status == Status.QUEUED and row.attempts == 1
    run_due_tasks()
    row.refresh_from_db()
    assert row.status == Status.SENT and row.attempts == 2
    assert stored_smtp.messages[0].message["Message-ID"] == row.message_id


def test_only_a_failed_message_can_be_requeued(stored_smtp):
    mail.send_mail("Reset", "Body", None, ["bob@example.com"])
    with pytest.raises(ValueError, match="Only a failed message"):
        outbox.requeue(OutboxMessage.objects.get())


def test_resend_copy_is_a_new_message_with_the_same_envelope_and_content(stored_smtp):
    stored_smtp.injections.data_reply = "554 5.7.1 Message rejected"
    EmailMessage("Reset", "The body", to=["bob@example.com"], bcc=["audit@example.com"]).send()
    run_due_tasks()
    stored_smtp.injections.data_reply = None
    original = OutboxMessage.objects.get()

    copy = outbox.resend_copy(original)
    assert copy.resend_of == original and copy.message_id != original.message_id
    assert (copy.to, copy.bcc_count, copy.subject) == ("bob@example.com", 1, "Reset")
    run_due_tasks()
    received = stored_smtp.messages[-1]
    assert received.message["Message-ID"] == copy.message_id
    assert sorted(received.rcpt_tos) == ["audit@example.com", "bob@example.com"]
    assert received.message.get_content().strip() == "The body"


def test_a_delivered_message_cannot_be_resent(stored_smtp):
    mail.send_mail("Reset", "Body", None, ["bob@example.com"])
    run_due_tasks()
    row = OutboxMessage.objects.get()
    with pytest.raises(outbox.BodyGone, match="no longer kept"):
        outbox.resend_copy(row)


# Encryption keys ----------------------------------------------------------------

NEW_KEY = "4Xo0b1ZfpO0cGk6Yt8yq0k9Jm3cYQyv4dM0rW0Vb8pE="


def test_rotate_encryption_key_re_encrypts_queued_messages(settings, stored_smtp):
    old_key = settings.MAILCONFIG_ENCRYPTION_KEYS[0]
    mail.send_mail("Reset", "Body", None, ["bob@example.com"])
    row = OutboxMessage.objects.get()
    before = raw_body(row)
    settings.MAILCONFIG_ENCRYPTION_KEYS = [NEW_KEY, old_key]
    call_command("rotate_encryption_key", stdout=StringIO())
    settings.MAILCONFIG_ENCRYPTION_KEYS = [NEW_KEY]  # the old key is gone now
    assert raw_body(row) != before
    run_due_tasks()
    assert stored_smtp.message_count == 1
