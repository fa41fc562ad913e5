"""A refused recipient is never lost from sight: the attempt names it with the server's
reply, the Email Log says "Sent, N recipient(s) refused", and Resend to refused recipients
sends the same message to them only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail import EmailMessage
from django.utils import timezone

from sender.errors import ConfigurationError, RecipientsRefused, RefusedRecipient
from sender.models import Attempt, OutboxMessage, Status
from sender.outbox import StoredBody, StoredEmail
from sender.retention import purge_email_log
from sender.transports.gmail import GmailTransport
from sender.transports.smtp import SmtpTransport
from settings_app.models import AuditEntry
from tests.log_rows import LOG_URL
from tests.outbox_helpers import run_due_tasks
from tests.test_api_transports import gmail_config
from tests.test_smtp_transport import smtp_config

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("queued_backend")]

REFUSAL = "550 5.1.1 No such user here"


@pytest.fixture
def refusing_bob(stored_smtp):
    stored_smtp.injections.rcpt_replies["bob@example.com"] = REFUSAL
    return stored_smtp


def sent_to_bob_and_eve() -> OutboxMessage:
    mail.send_mail("Disk almost full", "92% used.", None, ["bob@example.com", "eve@example.com"])
    run_due_tasks()
    return OutboxMessage.objects.get()


def test_the_transport_returns_the_refused_recipient_with_the_servers_reply(refusing_bob):
    with SmtpTransport(smtp_config(refusing_bob)) as transport:
        accepted = transport.send(
            EmailMessage("S", "B", "alice@example.com", ["bob@example.com", "eve@example.com"])
        )
    assert accepted.reply.startswith("250")
    assert accepted.refused == (RefusedRecipient("bob@example.com", REFUSAL),)


def test_a_partly_refused_message_is_sent_with_the_refusal_on_its_attempt(refusing_bob):
    row = sent_to_bob_and_eve()
    assert row.status == Status.SENT and row.refused_count == 1
    assert row.status_text == "Sent, 1 recipient refused"
    [attempt] = row.tries.all()
    assert attempt.outcome == Attempt.Outcome.SENT
    assert attempt.refused == [{"address": "bob@example.com", "reply": REFUSAL}]
    assert refusing_bob.messages[0].rcpt_tos == ["eve@example.com"]
    assert row.body, "the content is kept so it can be resent to bob"


def test_the_email_log_shows_and_counts_the_refusal(refusing_bob, admin_client):
    row = sent_to_bob_and_eve()
    mail.send_mail("Fine", "ok", None, ["eve@example.com"])
    run_due_tasks()
    page = admin_client.get(LOG_URL).content.decode()
    assert "Sent, 1 recipient refused" in page
    assert "1 with refused recipients" in page
    filtered = admin_client.get(LOG_URL, {"status": "refused"}).content.decode()
    assert "Disk almost full" in filtered and "Fine" not in filtered
    detail = admin_client.get(f"{LOG_URL}{row.pk}/").content.decode()
    assert "Not delivered to" in detail and "bob@example.com" in detail
    assert REFUSAL in detail
    assert "Resend to refused recipients" in detail


def test_resend_to_refused_recipients_sends_the_same_message_to_them_only(
    refusing_bob, admin_client
):
    original = sent_to_bob_and_eve()
    refusing_bob.injections.rcpt_replies.clear()  # bob's mailbox exists now
    response = admin_client.post(f"{LOG_URL}{original.pk}/resend/", {"action": "refused"})
    resent = OutboxMessage.objects.exclude(pk=original.pk).get()
    assert response.status_code == 302 and response.url == f"{LOG_URL}{resent.pk}/"
    assert resent.resend_of == original and resent.to == "bob@example.com"
    assert resent.message_id == original.message_id
    run_due_tasks()
    resent.refresh_from_db()
    assert resent.status == Status.SENT and resent.refused_count == 0
    received = refusing_bob.messages[-1]
    assert received.rcpt_tos == ["bob@example.com"]
    assert received.message["Message-ID"] == original.message_id
    assert "eve@example.com" in received.message["To"]  # the same message, headers intact
    audit = AuditEntry.objects.get(action="Resent a message to its refused recipients")
    assert "bob@example.com" in audit.changed_fields[0]


def test_resend_to_refused_recipients_is_refused_without_a_refusal(refusing_bob, admin_client):
    refusing_bob.injections.rcpt_replies.clear()
    row = sent_to_bob_and_eve()
    response = admin_client.post(f"{LOG_URL}{row.pk}/resend/", {"action": "refused"}, follow=True)
    assert "Nothing was sent" in response.content.decode()
    assert OutboxMessage.objects.count() == 1


def test_when_every_recipient_is_refused_the_failed_attempt_names_each(refusing_bob):
    refusing_bob.injections.rcpt_replies["eve@example.com"] = "550 5.7.1 Relaying denied"
    row = sent_to_bob_and_eve()
    assert row.status == Status.FAILED
    [attempt] = row.tries.all()
    assert attempt.refused == [
        {"address": "bob@example.com", "reply": REFUSAL},
        {"address": "eve@example.com", "reply": "550 5.7.1 Relaying denied"},
    ]


def test_an_api_refusing_a_recipient_names_the_recipients(google_fake):
    key = google_fake.make_service_account()
    google_fake.delegate(key["client_id"])
    google_fake.add_user("mailer@example.org")
    with (
        GmailTransport(gmail_config(key)) as transport,
        pytest.raises(RecipientsRefused) as raised,
    ):
        transport.send(EmailMessage("S", "B", "mailer@example.org", ["bob", "eve@example.com"]))
    addresses = [item.address for item in raised.value.refused]
    assert addresses == ["bob", "eve@example.com"]
    assert "Invalid To header" in raised.value.refused[0].reply


def test_an_api_never_sends_a_resend_meant_for_some_recipients_only(google_fake):
    key = google_fake.make_service_account()
    google_fake.delegate(key["client_id"])
    google_fake.add_user("mailer@example.org")
    mime = b"From: mailer@example.org\r\nTo: bob@example.com, eve@example.com\r\n\r\nHi\r\n"
    body = StoredBody("mailer@example.org", ["bob@example.com"], [], mime, envelope_only=True)
    with GmailTransport(gmail_config(key)) as transport, pytest.raises(ConfigurationError):
        transport.send(StoredEmail(body))
    assert google_fake.sent == []


def test_the_kept_content_of_a_partly_refused_message_is_dropped_like_a_failed_ones(
    refusing_bob, settings
):
    row = sent_to_bob_and_eve()
    later = timezone.now() + timedelta(days=settings.MAILCONFIG_FAILED_BODY_DAYS + 1)
    assert purge_email_log(now=later).bodies_dropped == 1
    row.refresh_from_db()
    assert row.body == ""
