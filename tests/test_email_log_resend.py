"""Resend from the Email Log: a Failed message as it was, or a copy of any message; POST only,
CSRF, permission, audited, and never a 500 for a message that is gone."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import connection
from django.test import Client

from sender.models import OutboxMessage, Status
from settings_app.email_log import ResendRefused, resend
from settings_app.models import AuditEntry
from tests.factories import PAGE_URL
from tests.log_rows import LOG_URL, logged_message
from tests.outbox_helpers import run_due_tasks

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("queued_backend")]


def failed_message(server) -> OutboxMessage:
    """A message the server refused for good, so the outbox marked it Failed (body kept)."""
    server.injections.rcpt_replies["bob@example.com"] = "550 5.1.1 No such user"
    mail.send_mail("Disk almost full", "92% used.", None, ["bob@example.com"])
    run_due_tasks()
    server.injections.rcpt_replies.clear()
    row = OutboxMessage.objects.get()
    assert row.status == Status.FAILED
    return row


def sent_message() -> OutboxMessage:
    mail.send_mail("Nightly backup", "Done.", None, ["ops@example.com"])
    run_due_tasks()
    row = OutboxMessage.objects.get(subject="Nightly backup")
    assert row.status == Status.SENT
    return row


def resend_url(pk: int) -> str:
    return f"{LOG_URL}{pk}/resend/"


def test_resend_queues_a_failed_message_again_with_the_same_message_id(admin_client, stored_smtp):
    row = failed_message(stored_smtp)
    response = admin_client.post(resend_url(row.pk), {"action": "requeue"}, follow=True)
    assert "is queued again, with the same Message-ID" in response.content.decode()
    row.refresh_from_db()
    assert row.status == Status.QUEUED
    run_due_tasks()
    row.refresh_from_db()
    assert row.status == Status.SENT and row.attempts == 2
    assert stored_smtp.messages[-1].message["Message-ID"] == row.message_id


def test_resend_a_copy_queues_a_new_message_to_the_same_recipients(admin_client, stored_smtp):
    original = failed_message(stored_smtp)
    response = admin_client.post(resend_url(original.pk), {"action": "copy", "confirmed": "yes"})
    copy = OutboxMessage.objects.exclude(pk=original.pk).get()
    assert response.status_code == 302 and response.url == f"{LOG_URL}{copy.pk}/"
    assert copy.resend_of == original and copy.message_id != original.message_id
    run_due_tasks()
    copy.refresh_from_db()
    assert copy.status == Status.SENT
    assert stored_smtp.messages[-1].rcpt_tos == ["bob@example.com"]
    assert stored_smtp.messages[-1].message["Message-ID"] == copy.message_id


def test_a_copy_can_be_sent_of_a_message_still_on_its_way(admin_client, stored_smtp):
    mail.send_mail("Weekly report", "Attached.", None, ["bob@example.com"])
    queued = OutboxMessage.objects.get()
    admin_client.post(resend_url(queued.pk), {"action": "copy", "confirmed": "yes"})
    assert OutboxMessage.objects.filter(resend_of=queued, status=Status.QUEUED).count() == 1


def test_resend_is_in_the_change_history(admin_client, stored_smtp):
    row = failed_message(stored_smtp)
    admin_client.post(resend_url(row.pk), {"action": "requeue"}, REMOTE_ADDR="192.0.2.7")
    admin_client.post(
        resend_url(row.pk), {"action": "copy", "confirmed": "yes"}, REMOTE_ADDR="192.0.2.7"
    )
    copy = OutboxMessage.objects.exclude(pk=row.pk).get()
    copied, requeued = AuditEntry.objects.all()[:2]
    assert (requeued.action, requeued.username, requeued.source_ip) == (
        "Resent a failed message",
        "admin",
        "192.0.2.7",
    )
    assert requeued.changed_fields == [f"Email Log #{row.pk} to bob@example.com, same Message-ID"]
    assert copied.action == "Resent a copy of a message"
    assert copied.changed_fields == [
        f"Email Log #{row.pk} to bob@example.com, queued as #{copy.pk}"
    ]
    history = admin_client.get(PAGE_URL).content.decode()
    assert f"Resent a failed message: Email Log #{row.pk} to bob@example.com" in history


def test_a_delivered_message_cannot_be_resent_and_the_page_says_why(admin_client, stored_smtp):
    row = sent_message()
    page = admin_client.get(f"{LOG_URL}{row.pk}/").content.decode()
    assert "The content of delivered messages is not kept, for privacy." in page
    assert 'data-testid="resend-copy" disabled' in page
    response = admin_client.post(
        resend_url(row.pk), {"action": "copy", "confirmed": "yes"}, follow=True
    )
    assert "Nothing was sent. The content of delivered messages is not kept" in (
        response.content.decode()
    )
    assert OutboxMessage.objects.count() == 1 and not AuditEntry.objects.exists()


def test_a_failed_message_whose_content_was_dropped_cannot_be_resent(admin_client, stored_smtp):
    row = failed_message(stored_smtp)
    OutboxMessage.objects.filter(pk=row.pk).update(body="")
    page = admin_client.get(f"{LOG_URL}{row.pk}/").content.decode()
    assert "kept for 7 days only" in page
    assert 'data-testid="resend-requeue" disabled' in page
    admin_client.post(resend_url(row.pk), {"action": "requeue"})
    row.refresh_from_db()
    assert row.status == Status.FAILED


def test_only_a_failed_message_is_resent_as_it_was(admin_client, stored_smtp):
    mail.send_mail("Weekly report", "Attached.", None, ["bob@example.com"])
    row = OutboxMessage.objects.get()
    response = admin_client.post(resend_url(row.pk), {"action": "requeue"}, follow=True)
    assert "is Queued, not Failed" in response.content.decode()
    assert not AuditEntry.objects.exists()


def test_a_failed_message_is_resent_once_when_the_button_is_pressed_twice(
    admin_client, stored_smtp
):
    row = failed_message(stored_smtp)
    admin_client.post(resend_url(row.pk), {"action": "requeue"})
    second = admin_client.post(resend_url(row.pk), {"action": "requeue"}, follow=True)
    assert "Nothing was sent" in second.content.decode()
    assert AuditEntry.objects.count() == 1


def test_resending_a_message_no_longer_in_the_log_is_not_an_error(admin_client):
    response = admin_client.post(
        resend_url(424242), {"action": "copy", "confirmed": "yes"}, follow=True
    )
    assert response.status_code == 200
    assert "message #424242 is no longer in the Email Log" in response.content.decode()


def test_an_unknown_action_sends_nothing(admin_client):
    row = logged_message(status=Status.FAILED)
    response = admin_client.post(resend_url(row.pk), {"action": "explode"}, follow=True)
    assert "unknown Resend action" in response.content.decode()
    assert OutboxMessage.objects.count() == 1


def test_resend_answers_only_post(admin_client):
    row = logged_message(status=Status.FAILED)
    assert admin_client.get(resend_url(row.pk)).status_code == 405


def test_resend_needs_the_csrf_token():
    admin = get_user_model().objects.create_superuser("admin", "admin@example.com", "pass-12345")
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin)
    row = logged_message(status=Status.FAILED)
    assert (
        client.post(resend_url(row.pk), {"action": "copy", "confirmed": "yes"}).status_code == 403
    )
    assert OutboxMessage.objects.count() == 1


def test_resend_needs_the_permission(client):
    row = logged_message(status=Status.FAILED)
    client.force_login(get_user_model().objects.create_user("viewer", password="pass-12345"))
    assert (
        client.post(resend_url(row.pk), {"action": "copy", "confirmed": "yes"}).status_code == 403
    )
    assert OutboxMessage.objects.count() == 1 and not AuditEntry.objects.exists()


@pytest.mark.db_sensitive
def test_two_admins_resending_one_failed_message_at_once_send_it_once():
    admin = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw-123456")
    row = logged_message(status=Status.FAILED)
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def press_resend() -> None:
        try:
            start.wait()
            resend(row.pk, action="requeue", user=admin, source_ip=None)
            outcomes.append("queued")
        except ResendRefused:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=press_resend) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["queued", "refused"]
    assert AuditEntry.objects.count() == 1


# Resend a copy: a confirm step, and one copy for many presses (issue 21.8) ---------------


def test_resend_a_copy_first_asks_for_confirmation(admin_client, stored_smtp):
    row = failed_message(stored_smtp)
    response = admin_client.post(resend_url(row.pk), {"action": "copy"}, follow=True)
    body = response.content.decode()
    assert OutboxMessage.objects.count() == 1  # nothing queued yet
    assert 'data-testid="confirm-copy"' in body and "Send a copy of this message to" in body
    assert 'name="confirmed" value="yes"' in body


def test_a_second_copy_within_seconds_needs_its_own_confirmation(admin_client, stored_smtp):
    row = failed_message(stored_smtp)
    confirmed = {"action": "copy", "confirmed": "yes"}
    admin_client.post(resend_url(row.pk), confirmed)
    response = admin_client.post(resend_url(row.pk), confirmed, follow=True)
    body = response.content.decode()
    assert OutboxMessage.objects.filter(resend_of=row).count() == 1
    assert "was queued moments ago" in body and 'name="again" value="yes"' in body
    admin_client.post(resend_url(row.pk), confirmed | {"again": "yes"})
    assert OutboxMessage.objects.filter(resend_of=row).count() == 2


@pytest.mark.db_sensitive
def test_25_concurrent_confirmed_presses_queue_one_copy():
    admin = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw-123456")
    row = logged_message(status=Status.FAILED)
    presses = 25
    start = threading.Barrier(presses)
    statuses: list[int] = []

    def press() -> None:
        client = Client()
        client.force_login(admin)
        try:
            start.wait()
            response = client.post(resend_url(row.pk), {"action": "copy", "confirmed": "yes"})
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=press) for _ in range(presses)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [302] * presses
    assert OutboxMessage.objects.filter(resend_of=row).count() == 1
    assert AuditEntry.objects.filter(action="Resent a copy of a message").count() == 1
