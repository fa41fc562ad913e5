"""A server that answers a little at a time, or too much, cannot hold the sender.

A socket timeout bounds one read, not a reply: these servers send a byte now and
then, each within the timeout, and would keep smtplib reading for ever. Test Mail
stops at MAILCONFIG_TIMEOUT, normal sending at MAILCONFIG_SEND_TIMEOUT per message,
and a reply line or a whole reply has a maximum size.
"""

from __future__ import annotations

import time

import pytest
from django.core import mail
from django.core.mail import EmailMessage

from sender.backend import EmailBackend
from sender.errors import MailConnectionError, ProviderError
from sender.models import OutboxMessage, Status
from sender.transcript import Transcript
from sender.transports.smtp import SmtpTransport
from sender.transports.smtp_connection import MAX_REPLY, MAX_REPLY_LINE
from tests.factories import PAGE_URL, smtp_post, store_smtp
from tests.outbox_helpers import forget_worker_connection, run_due_tasks
from tests.servers.scripted_smtp import ScriptedSmtpServer
from tests.test_smtp_transport import smtp_config

LIMIT = 1.0
BYTE_INTERVAL = 0.05  # each byte comes well within the per-read timeout
# Generous for a shared machine: the point is "about the limit", not "as long as the server likes".
UPPER_BOUND = LIMIT * 2 + 1.5
TEST_URL = PAGE_URL + "test-mail/"
FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}
# Where each trickled reply is read, as the transcript names the step.
STAGES = {
    "greeting": "Connect",
    "EHLO": "EHLO",
    "AUTH": "Authenticate",
    "DATA-END": "Send message",
}


@pytest.fixture
def our_backend(settings):
    # pytest-django switches to the locmem backend; normal sending needs the real one.
    settings.EMAIL_BACKEND = "sender.backend.EmailBackend"
    settings.MAILCONFIG_DELIVERY = "immediate"  # each test below says when it queues


def plain(server: ScriptedSmtpServer) -> dict[str, str]:
    """Form values for the scripted server: plain SMTP with Basic authentication."""
    return smtp_post(server, security="none")


def trickle_forever(server: ScriptedSmtpServer, stage: str) -> None:
    # "220-still here\r\n" and so on, one byte at a time, until the client leaves.
    server.trickle[stage] = BYTE_INTERVAL
    server.forever.add(stage)


def timed(action) -> tuple[object, float]:
    started = time.monotonic()
    result = action()
    return result, time.monotonic() - started


# Test Mail: MAILCONFIG_TIMEOUT is a deadline for the whole test ---------------


@pytest.mark.django_db
@pytest.mark.parametrize("stage", STAGES)
def test_test_mail_stops_at_its_time_limit_when_a_reply_trickles_forever(
    admin_client, scripted_smtp, settings, stage
):
    settings.MAILCONFIG_TIMEOUT = LIMIT
    trickle_forever(scripted_smtp, stage)
    response, elapsed = timed(lambda: admin_client.post(TEST_URL, plain(scripted_smtp), **FETCH))
    body = response.content.decode()
    assert f"Test mail failed</strong> at “{STAGES[stage]}”" in body
    assert "time limit of 1 seconds" in body
    assert elapsed < UPPER_BOUND


@pytest.mark.django_db
def test_test_mail_does_not_report_sent_when_the_final_reply_comes_too_slowly(
    admin_client, scripted_smtp, settings
):
    # "250 2.0.0 OK queued as SCRIPTED" at a byte every 0.2 s takes about 7 s.
    settings.MAILCONFIG_TIMEOUT = LIMIT
    scripted_smtp.trickle["DATA-END"] = 0.2
    response, elapsed = timed(lambda: admin_client.post(TEST_URL, plain(scripted_smtp), **FETCH))
    body = response.content.decode()
    assert "Test mail sent" not in body
    assert "at “Send message”" in body and "time limit of 1 seconds" in body
    assert elapsed < UPPER_BOUND


# Normal sending: MAILCONFIG_SEND_TIMEOUT per message --------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("stage", STAGES)
def test_sending_a_message_stops_at_the_send_time_limit(
    our_backend, scripted_smtp, settings, stage
):
    settings.MAILCONFIG_SEND_TIMEOUT = LIMIT
    store_smtp(scripted_smtp, security="none")
    trickle_forever(scripted_smtp, stage)
    with pytest.raises(MailConnectionError) as caught:
        mail.send_mail("S", "B", None, ["bob@example.com"])
    assert caught.value.code == "TIMEOUT"
    assert caught.value.step == {**STAGES, "DATA-END": "Message data"}[stage]
    assert "limited to 1 seconds (MAILCONFIG_SEND_TIMEOUT)" in caught.value.hint


@pytest.mark.django_db
def test_sending_gives_up_at_the_send_time_limit_not_later(our_backend, scripted_smtp, settings):
    settings.MAILCONFIG_SEND_TIMEOUT = LIMIT
    store_smtp(scripted_smtp, security="none")
    trickle_forever(scripted_smtp, "DATA-END")
    started = time.monotonic()
    assert mail.send_mail("S", "B", None, ["bob@example.com"], fail_silently=True) == 0
    assert time.monotonic() - started < UPPER_BOUND


@pytest.mark.django_db
def test_each_message_gets_its_own_time_and_a_fresh_connection_after_a_timeout(
    our_backend, scripted_smtp, settings
):
    settings.MAILCONFIG_SEND_TIMEOUT = LIMIT
    store_smtp(scripted_smtp, security="none")
    trickle_forever(scripted_smtp, "DATA-END")
    scripted_smtp.only_first_connection = True
    messages = [EmailMessage("S", "B", None, ["bob@example.com"]) for _ in range(2)]
    # The first message's reply never ends; the second goes through a new connection.
    assert EmailBackend(fail_silently=True).send_messages(messages) == 1
    assert scripted_smtp.connections == 2


@pytest.mark.django_db
def test_a_quit_reply_that_trickles_does_not_hold_the_sender_after_sending(
    our_backend, scripted_smtp, settings
):
    settings.MAILCONFIG_TIMEOUT = LIMIT
    store_smtp(scripted_smtp, security="none")
    trickle_forever(scripted_smtp, "QUIT")
    sent, elapsed = timed(lambda: mail.send_mail("S", "B", None, ["bob@example.com"]))
    assert sent == 1
    assert elapsed < UPPER_BOUND


# Size limits ------------------------------------------------------------------


def opening(server: ScriptedSmtpServer) -> Exception:
    transcript = Transcript()
    with pytest.raises(ProviderError) as caught:
        SmtpTransport(smtp_config(server, security="none"), transcript=transcript).open()
    return caught.value


def test_a_reply_line_longer_than_the_limit_is_refused(scripted_smtp):
    scripted_smtp.replies["greeting"] = b"220 " + b"x" * (MAX_REPLY_LINE + 10) + b"\r\n"
    error = opening(scripted_smtp)
    assert error.code == "LINE-TOO-LONG"
    assert error.step == "Connect"
    assert "does not behave like a mail server" in error.hint


def test_a_line_without_an_end_is_refused_once_it_is_too_long(scripted_smtp):
    scripted_smtp.replies["greeting"] = b"220 " + b"x" * (MAX_REPLY_LINE * 2)
    assert opening(scripted_smtp).code == "LINE-TOO-LONG"


def test_a_reply_longer_than_the_limit_is_refused(scripted_smtp):
    line = b"250-" + b"y" * 1000 + b"\r\n"
    lines = MAX_REPLY // len(line) + 2
    scripted_smtp.replies["EHLO"] = line * lines + b"250 SIZE 1000\r\n"
    error = opening(scripted_smtp)
    assert error.code == "REPLY-TOO-LONG"
    assert error.step == "EHLO"


def test_a_long_but_reasonable_reply_is_read_whole(scripted_smtp):
    capabilities = b"".join(b"250-X-EXTENSION-%d\r\n" % n for n in range(200))
    scripted_smtp.replies["EHLO"] = (
        b"250-scripted.test\r\n" + capabilities + b"250 AUTH PLAIN LOGIN\r\n"
    )
    transcript = Transcript()
    with SmtpTransport(smtp_config(scripted_smtp, security="none"), transcript=transcript) as t:
        t.send(EmailMessage("S", "B", "alice@example.com", ["bob@example.com"]))
    assert transcript.ok
    assert scripted_smtp.messages == 1


# The worker: the same MAILCONFIG_SEND_TIMEOUT per message --------------------


@pytest.mark.django_db(transaction=True)  # the task is queued on commit
@pytest.mark.parametrize("stage", STAGES)
def test_a_worker_is_not_held_by_a_trickling_server_and_retries_later(
    our_backend, scripted_smtp, settings, stage
):
    settings.MAILCONFIG_DELIVERY = "queued"
    settings.MAILCONFIG_SEND_TIMEOUT = LIMIT
    store_smtp(scripted_smtp, security="none")
    trickle_forever(scripted_smtp, stage)
    forget_worker_connection()
    mail.send_mail("S", "B", None, ["bob@example.com"])
    try:
        _, elapsed = timed(run_due_tasks)
    finally:
        forget_worker_connection()
    row = OutboxMessage.objects.get()
    assert row.status == Status.RETRYING
    assert row.last_error_code == "TIMEOUT"
    assert elapsed < UPPER_BOUND
