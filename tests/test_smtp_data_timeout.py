"""After the final dot an SMTP server may take a while (RFC 5321: up to 10 minutes) to
confirm a message: the wait is MAILCONFIG_DATA_TIMEOUT, not the per-command timeout,
within the message's MAILCONFIG_SEND_TIMEOUT; when no confirmation comes, the error says
the server may already have the message and a duplicate can follow."""

from __future__ import annotations

import math
import time

import pytest
from django.core import mail

from sender.errors import MailConnectionError
from tests.factories import PAGE_URL, smtp_post, store_smtp

pytestmark = pytest.mark.django_db
COMMAND_TIMEOUT = 0.5
TEST_URL = PAGE_URL + "test-mail/"
FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}


@pytest.fixture
def our_backend(settings):
    # pytest-django switches to the locmem backend; normal sending needs the real one.
    settings.EMAIL_BACKEND = "sender.backend.EmailBackend"
    settings.MAILCONFIG_DELIVERY = "immediate"
    settings.MAILCONFIG_TIMEOUT = COMMAND_TIMEOUT


def send_one() -> tuple[MailConnectionError | None, float]:
    started = time.monotonic()
    try:
        mail.send_mail("Report", "Body", None, ["bob@example.com"])
    except MailConnectionError as error:
        return error, time.monotonic() - started
    return None, time.monotonic() - started


def test_a_server_slow_to_confirm_the_message_is_waited_for_past_the_command_timeout(
    our_backend, scripted_smtp, settings
):
    settings.MAILCONFIG_DATA_TIMEOUT = 10.0
    settings.MAILCONFIG_SEND_TIMEOUT = 10.0
    store_smtp(scripted_smtp, security="none")
    scripted_smtp.delays["DATA-END"] = COMMAND_TIMEOUT * 3  # checking the content, say
    error, _ = send_one()
    assert error is None
    assert scripted_smtp.messages == 1 and scripted_smtp.connections == 1  # sent once


def test_a_server_that_never_confirms_is_waited_for_the_data_timeout_and_may_have_it(
    our_backend, scripted_smtp, settings
):
    settings.MAILCONFIG_DATA_TIMEOUT = 2.0
    settings.MAILCONFIG_SEND_TIMEOUT = 10.0
    store_smtp(scripted_smtp, security="none")
    scripted_smtp.delays["DATA-END"] = math.inf
    error, elapsed = send_one()
    assert error is not None
    assert 1.8 <= elapsed < 5
    assert error.step == "Message data" and error.code == "TIMEOUT"
    assert "did not confirm the message within 2 seconds" in error.message
    assert "it may already have the message" in error.hint
    assert "can deliver a duplicate with the same Message-ID" in error.hint
    assert "limited to 2 seconds (MAILCONFIG_DATA_TIMEOUT)" in error.hint
    assert scripted_smtp.messages == 1  # the server has it


def test_the_wait_after_the_data_still_ends_with_the_message_time_limit(
    our_backend, scripted_smtp, settings
):
    settings.MAILCONFIG_DATA_TIMEOUT = 600.0
    settings.MAILCONFIG_SEND_TIMEOUT = 2.0
    store_smtp(scripted_smtp, security="none")
    scripted_smtp.delays["DATA-END"] = math.inf
    error, elapsed = send_one()
    assert error is not None
    assert elapsed < 4
    assert error.step == "Message data" and error.code == "TIMEOUT"
    assert "it may already have the message" in error.hint
    assert "Sending one message is limited to 2 seconds (MAILCONFIG_SEND_TIMEOUT)" in error.hint


def test_test_mail_says_the_server_may_have_the_message_when_it_never_confirms(
    admin_client, scripted_smtp, settings
):
    settings.MAILCONFIG_TIMEOUT = 1.0  # the whole Test Mail
    scripted_smtp.delays["DATA-END"] = math.inf
    body = admin_client.post(TEST_URL, smtp_post(scripted_smtp, security="none"), **FETCH)
    text = body.content.decode()
    assert "Test mail sent" not in text
    assert "it may already have the message" in text
    assert "The whole Test Mail is limited to 1 seconds (MAILCONFIG_TIMEOUT)" in text
