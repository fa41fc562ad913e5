"""A server that echoes what it was sent at AUTH, cut over ``535-`` lines, reveals nothing.

The scripted server answers a failed AUTH with the client's base64, its decoding, and
the decoding re-encoded at each of the three base64 alignments, all cut into pieces
of a few characters, one ``535-5.7.8`` line each. Neither the transcript, nor the
error's message and provider text, nor the logs may let the secret be read back,
by eye or by decoding base64.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re

import pytest
from django.core import mail
from django.core.mail import EmailMessage
from hypothesis import given
from hypothesis import strategies as st

from sender.errors import MailError
from sender.models import Attempt, OutboxMessage
from sender.redaction import HIDDEN, Redactor
from sender.transcript import Transcript
from sender.transports.smtp import SmtpTransport
from tests.factories import PAGE_URL, smtp_post, store_smtp
from tests.outbox_helpers import forget_worker_connection, run_due_tasks
from tests.servers.scripted_smtp import ScriptedSmtpServer
from tests.test_smtp_transport import StaticTokens, smtp_config

PASSWORD = "s3cret-Pässwort-42"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + "bGlrZS1hLXJlYWwtYWNjZXNzLXRva2Vu" * 8
PIECE_SIZES = (1, 3, 4, 7)
ENHANCED_CODE = re.compile(r"(?<!\S)[245]\.\d{1,3}\.\d{1,3}(?!\S)")


def echo_in_pieces(size: int):
    """An AUTH reply that repeats everything the client sent, ``size`` characters a line."""

    def reply(lines: list[bytes]) -> bytes:
        sent = [part for line in lines for part in line.split()[2 if line[:4] == b"AUTH" else 0 :]]
        decoded = [base64.b64decode(part) for part in sent]
        material = b" ".join(
            sent
            + [d.replace(b"\0", b" ").replace(b"\x01", b" ") for d in decoded]
            + [base64.b64encode(b"~" * shift + d) for d in decoded for shift in range(3)]
        )
        pieces = [material[i : i + size] for i in range(0, len(material), size)]
        return b"".join(b"535-5.7.8 " + piece + b"\r\n" for piece in pieces) + (
            b"535 5.7.8 Authentication failed\r\n"
        )

    return reply


def recoverable(text: str, secret: str) -> bool:
    """Whether ``secret`` can be read from ``text``: as it is, or by decoding base64 in it,
    once line breaks, spaces and enhanced status codes are taken out."""
    compact = re.sub(r"\s+", "", ENHANCED_CODE.sub(" ", text))
    wanted = secret.encode()
    if secret in compact or wanted in compact.encode():
        return True
    for run in re.findall(r"[A-Za-z0-9+/]+=*", compact):
        for shift in range(4):
            chunk = run[shift:]
            chunk = chunk[: len(chunk) // 4 * 4]
            try:
                if wanted in base64.b64decode(chunk):
                    return True
            except (binascii.Error, ValueError):
                continue
    return False


def failed_sign_in(server: ScriptedSmtpServer, **config) -> tuple[MailError, Transcript]:
    transcript = Transcript()
    tokens = config.pop("token_provider", None)
    with pytest.raises(MailError) as caught:
        SmtpTransport(
            smtp_config(server, **config), transcript=transcript, token_provider=tokens
        ).open()
    return caught.value, transcript


def shown(error: MailError, transcript: Transcript) -> str:
    """Everything an admin or a log could see of the failure."""
    texts = [error.message, error.provider_text, str(error), repr(error.args)]
    for step in transcript.steps:
        texts += [*step.details, step.error, step.provider_text]
    return "\n".join(texts)


@pytest.fixture(params=PIECE_SIZES, ids=lambda size: f"pieces-of-{size}")
def echoing_server(request, scripted_smtp: ScriptedSmtpServer) -> ScriptedSmtpServer:
    scripted_smtp.auth_reply = echo_in_pieces(request.param)
    return scripted_smtp


def test_plain_credentials_echoed_in_pieces_stay_hidden(echoing_server):
    echoing_server.replies["EHLO"] = b"250-scripted.test\r\n250 AUTH PLAIN\r\n"
    error, transcript = failed_sign_in(echoing_server, security="none", password=PASSWORD)
    assert echoing_server.auth_lines[0].startswith(b"AUTH PLAIN ")
    assert error.code == "535" and HIDDEN in error.provider_text
    assert not recoverable(shown(error, transcript), PASSWORD)
    assert not recoverable(shown(error, transcript), f"\0alice@example.com\0{PASSWORD}")


def test_login_credentials_echoed_in_pieces_stay_hidden(echoing_server):
    echoing_server.replies["EHLO"] = b"250-scripted.test\r\n250 AUTH LOGIN\r\n"
    error, transcript = failed_sign_in(echoing_server, security="none", password=PASSWORD)
    assert echoing_server.auth_lines[0].startswith(b"AUTH LOGIN ")
    assert error.code == "535" and HIDDEN in error.provider_text
    assert not recoverable(shown(error, transcript), PASSWORD)


def test_xoauth2_token_echoed_in_pieces_stays_hidden(echoing_server):
    error, transcript = failed_sign_in(
        echoing_server,
        security="none",
        auth="oauth",
        password="",
        token_provider=StaticTokens(TOKEN),
    )
    assert echoing_server.auth_lines[0].startswith(b"AUTH XOAUTH2 ")
    assert error.code == "535" and HIDDEN in error.provider_text
    seen = shown(error, transcript)
    assert not recoverable(seen, TOKEN)
    # Not even most of it: any 16 characters of the token would be too many.
    assert not any(recoverable(seen, TOKEN[i : i + 16]) for i in range(0, len(TOKEN) - 16, 5))


def test_the_server_words_around_the_secret_are_kept(echoing_server):
    echoing_server.replies["EHLO"] = b"250-scripted.test\r\n250 AUTH PLAIN\r\n"
    error, _ = failed_sign_in(echoing_server, security="none", password=PASSWORD)
    assert error.provider_text.endswith("Authentication failed")


@pytest.mark.django_db
def test_test_mail_page_and_logs_show_no_echoed_password(admin_client, scripted_smtp, caplog):
    scripted_smtp.auth_reply = echo_in_pieces(3)
    post = smtp_post(scripted_smtp, security="none", password=PASSWORD)
    with caplog.at_level(logging.DEBUG):
        page = admin_client.post(
            PAGE_URL + "test-mail/", post, HTTP_X_REQUESTED_WITH="fetch"
        ).content.decode()
    assert "Test mail failed" in page and scripted_smtp.auth_lines
    assert not recoverable(page, PASSWORD)
    assert not recoverable(caplog.text, PASSWORD)


# The redaction itself: any secret, any alignment, cut anywhere -----------------


@given(
    secret=st.text(st.characters(codec="utf-8", exclude_categories=("Z", "C")), min_size=6),
    before=st.binary(max_size=8),
    after=st.binary(max_size=8),
    cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=12),
)
def test_base64_of_a_secret_inside_longer_base64_cut_anywhere_is_hidden(
    secret, before, after, cuts
):
    encoded = base64.b64encode(before + secret.encode() + after).decode()
    pieces, last = [], 0
    for cut in sorted({c % (len(encoded) + 1) for c in cuts}):
        pieces.append(encoded[last:cut])
        last = cut
    pieces.append(encoded[last:])
    reply = "5.7.8 Authentication failed: " + "\n5.7.8 ".join(pieces)
    redacted = Redactor([secret]).redact(reply)
    assert not recoverable(redacted, secret)
    assert redacted.startswith("5.7.8 Authentication failed: ")


# Replies to a message sent: stored in the Email Log, shown on its page ---------------

LOG_URL = "/admin/general-settings/mail-server/log/"
PLAIN_SENT = base64.b64encode(b"\0alice@example.com\0" + PASSWORD.encode()).decode()


def echoing_final_reply(server: ScriptedSmtpServer, code: bytes = b"250") -> None:
    """The final reply to DATA repeats the AUTH base64 and the decoded password, cut over
    lines and in another letter case."""
    server.replies["EHLO"] = b"250-scripted.test\r\n250 AUTH PLAIN\r\n"
    half = len(PASSWORD) // 2
    lines = [
        f"2.0.0 you signed in with {PLAIN_SENT[:17]}",
        f"2.0.0 {PLAIN_SENT[17:]}",
        f"2.0.0 that is {PASSWORD[:half]}",
        f"2.0.0 {PASSWORD[half:]}, or {PASSWORD.upper()}",
        "2.0.0 OK queued as ECHO42",
    ]
    server.replies["DATA-END"] = b"".join(
        code + (b" " if n == len(lines) - 1 else b"-") + line.encode() + b"\r\n"
        for n, line in enumerate(lines)
    )


def reveals_credentials(text: str) -> bool:
    return (
        recoverable(text, PASSWORD)
        or PASSWORD.upper() in text
        or recoverable(text, f"\0alice@example.com\0{PASSWORD}")
    )


def test_a_success_reply_echoing_the_credentials_comes_back_scrubbed(scripted_smtp):
    echoing_final_reply(scripted_smtp)
    config = smtp_config(scripted_smtp, security="none", password=PASSWORD)
    with SmtpTransport(config) as transport:  # no transcript: as the worker sends
        reply = transport.send(
            EmailMessage("S", "B", "alice@example.com", ["bob@example.com"])
        ).reply
    assert reply.startswith("250 ") and reply.endswith("OK queued as ECHO42")
    assert HIDDEN in reply and not reveals_credentials(reply)


def test_an_error_reply_after_sign_in_echoing_the_credentials_comes_back_scrubbed(scripted_smtp):
    echoing_final_reply(scripted_smtp, code=b"554")
    config = smtp_config(scripted_smtp, security="none", password=PASSWORD)
    with SmtpTransport(config) as transport, pytest.raises(MailError) as caught:
        transport.send(EmailMessage("S", "B", "alice@example.com", ["bob@example.com"]))
    assert caught.value.code == "554"
    assert not reveals_credentials(shown(caught.value, Transcript()))


@pytest.mark.django_db(transaction=True)  # the worker is woken on commit
def test_the_email_log_stores_and_shows_no_echoed_credentials(
    settings, admin_client, scripted_smtp
):
    settings.EMAIL_BACKEND = "sender.backend.EmailBackend"
    settings.MAILCONFIG_DELIVERY = "queued"
    echoing_final_reply(scripted_smtp)
    store_smtp(scripted_smtp, security="none", password=PASSWORD)
    forget_worker_connection()
    try:
        mail.send_mail("S", "B", None, ["bob@example.com"])
        run_due_tasks()
    finally:
        forget_worker_connection()
    attempt = Attempt.objects.get()
    assert attempt.outcome == "sent" and "queued as ECHO42" in attempt.reply
    assert not reveals_credentials(attempt.reply)
    stored = OutboxMessage.objects.values().get()
    assert not any(reveals_credentials(str(value)) for value in stored.values())
    page = admin_client.get(f"{LOG_URL}{attempt.message_id}/").content.decode()
    assert "queued as ECHO42" in page and not reveals_credentials(page)


@pytest.mark.django_db
def test_test_mail_shows_no_credentials_echoed_in_the_final_reply(admin_client, scripted_smtp):
    echoing_final_reply(scripted_smtp)
    post = smtp_post(scripted_smtp, security="none", password=PASSWORD)
    page = admin_client.post(
        PAGE_URL + "test-mail/", post, HTTP_X_REQUESTED_WITH="fetch"
    ).content.decode()
    assert "queued as ECHO42" in page
    assert not reveals_credentials(page)


def test_a_secret_in_another_letter_case_is_hidden():
    redacted = Redactor([PASSWORD]).redact(f"250 ok {PASSWORD.upper()} and {PASSWORD.lower()}")
    assert redacted == f"250 ok {HIDDEN} and {HIDDEN}"


def test_refused_recipients_replies_echoing_the_password_come_back_scrubbed(scripted_smtp):
    scripted_smtp.replies["EHLO"] = b"250-scripted.test\r\n250 AUTH PLAIN\r\n"
    scripted_smtp.replies["RCPT"] = f"550 5.1.1 unknown; you sent {PASSWORD}\r\n".encode()
    config = smtp_config(scripted_smtp, security="none", password=PASSWORD)
    with SmtpTransport(config) as transport, pytest.raises(MailError) as caught:
        transport.send(
            EmailMessage("S", "B", "alice@example.com", ["bob@example.com", "eve@x.org"])
        )
    assert [item.address for item in caught.value.refused] == ["bob@example.com", "eve@x.org"]
    assert all(HIDDEN in item.reply for item in caught.value.refused)
    assert not any(reveals_credentials(item.reply) for item in caught.value.refused)
