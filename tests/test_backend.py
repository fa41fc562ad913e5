"""The Django email backend: every send_mail() goes through the stored configuration."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.mail import EmailMessage, EmailMultiAlternatives, get_connection
from django.core.management import call_command

from sender.errors import AuthenticationError, AuthorizationError, ConfigurationError
from tests.factories import store
from tests.test_api_transports import CLIENT_ID, GRAPH_VALUES, SECRET, TENANT

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def our_backend(settings):
    # pytest-django switches to the locmem backend; these tests need the real one,
    # sending within send_mail() (the outbox's own tests are in test_outbox.py).
    settings.EMAIL_BACKEND = "sender.backend.EmailBackend"
    settings.MAILCONFIG_DELIVERY = "immediate"


def test_send_mail_uses_the_stored_server_and_from_address(stored_smtp):
    assert mail.send_mail("Subject", "Body", None, ["bob@example.com"]) == 1
    received = stored_smtp.messages[0]
    assert received.mail_from == "alice@example.com"
    assert received.message["From"] == "Alerts <alice@example.com>"


def test_attachments_html_and_unicode(stored_smtp):
    item = EmailMultiAlternatives("Prüfbericht ✓", "Text", to=["Zoë <zoe@example.com>"])
    item.attach_alternative("<b>HTML</b>", "text/html")
    item.attach("daten.txt", "ä,ö\n", "text/plain")
    item.send()
    received = stored_smtp.messages[0].message
    assert received["Subject"] == "Prüfbericht ✓"
    assert [part.get_filename() for part in received.iter_attachments()] == ["daten.txt"]
    assert received.get_body(("html",)).get_content().strip() == "<b>HTML</b>"


def test_bcc_only_in_the_envelope(stored_smtp):
    EmailMessage("S", "B", to=["to@example.com"], bcc=["hidden@example.com"]).send()
    received = stored_smtp.messages[0]
    assert "hidden@example.com" in received.rcpt_tos
    assert b"hidden@example.com" not in received.data


def test_one_connection_per_batch(stored_smtp):
    messages = [EmailMessage("S", "B", to=[f"user{i}@example.com"]) for i in range(10)]
    assert get_connection().send_messages(messages) == 10
    assert stored_smtp.connections == 1


def test_connection_reused_across_calls_when_opened(stored_smtp):
    with get_connection() as connection:
        for i in range(3):
            EmailMessage("S", "B", to=[f"u{i}@example.com"], connection=connection).send()
    assert stored_smtp.connections == 1


def test_mail_admins_goes_to_the_admin_mail_address(stored_smtp):
    store(admin_address="admin@example.com")
    mail.mail_admins("Disk full", "Please look")
    assert stored_smtp.messages[0].rcpt_tos == ["admin@example.com"]


def test_sendtestemail_command(stored_smtp):
    call_command("sendtestemail", "bob@example.com")
    assert stored_smtp.messages[0].rcpt_tos == ["bob@example.com"]


def test_a_new_save_is_picked_up(stored_smtp, smtp_server_factory):
    mail.send_mail("one", "B", None, ["bob@example.com"])
    other = smtp_server_factory(security="plain")
    store(port=other.port, security="none", username="", password="")
    mail.send_mail("two", "B", None, ["bob@example.com"])
    assert len(stored_smtp.messages) == 1 and len(other.messages) == 1


def test_nothing_configured_is_a_clear_error():
    with pytest.raises(ConfigurationError) as caught:
        mail.send_mail("S", "B", None, ["bob@example.com"])
    assert "/admin/general-settings/mail-server/" in caught.value.hint


def test_fail_silently(stored_smtp):
    stored_smtp.injections.mail_from_reply = "550 5.7.60 SMTP; Client does not have permissions"
    assert mail.send_mail("S", "B", None, ["bob@example.com"], fail_silently=True) == 0


def test_graph_token_requested_once_for_many_sends(microsoft_fake):
    microsoft_fake.add_app(TENANT, CLIENT_ID, SECRET)
    store(**GRAPH_VALUES)
    for i in range(5):
        mail.send_mail("S", "B", None, [f"user{i}@example.com"])
    assert len(microsoft_fake.sent) == 5
    assert microsoft_fake.tokens_issued["client_credentials"] == 1


def test_a_wrong_non_ascii_password_is_a_mail_error_that_fail_silently_suppresses(stored_smtp):
    store(password="pässwört")  # not the account's password
    with pytest.raises(AuthenticationError):
        mail.send_mail("S", "B", None, ["bob@example.com"])
    assert mail.send_mail("S", "B", None, ["bob@example.com"], fail_silently=True) == 0
    assert stored_smtp.messages == []


def test_a_send_as_refusal_at_data_is_an_authorization_error(stored_smtp):
    stored_smtp.injections.data_reply = (
        "554 5.2.252 SendAsDenied; alice@example.com not allowed to send as other@example.com; "
        "STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied"
    )
    with pytest.raises(AuthorizationError):
        mail.send_mail("S", "B", "other@example.com", ["bob@example.com"])
