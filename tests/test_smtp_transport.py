"""SMTP transport against real aiosmtpd servers: TLS modes, auth, failures explained."""

from __future__ import annotations

import dataclasses
import socket
import time
from typing import Any

import pytest
from django.core.mail import EmailMessage

from sender.errors import (
    AuthenticationError,
    AuthorizationError,
    ConfigurationError,
    MailConnectionError,
    RecipientsRefused,
    TLSError,
)
from sender.known_failures import SEND_AS_HINT
from sender.network import connect_first
from sender.tokens import AccessToken
from sender.transcript import Transcript
from sender.transports.smtp import SmtpTransport
from settings_app.values import MailSettings
from tests.servers.scripted_smtp import ScriptedSmtpServer
from tests.servers.smtp_server import BlackHoleServer, SmtpTestServer, refused_port

SECURITY = {"ssl": "ssl", "starttls": "tls", "plain": "none"}


def smtp_config(
    server: SmtpTestServer | ScriptedSmtpServer | None = None, **overrides: Any
) -> MailSettings:
    """Settings pointing at a test server, signed in as the test user."""
    values: dict[str, Any] = {
        "mode": "smtp",
        "server_name": "localhost",
        "port": server.port if server else refused_port(),
        "security": SECURITY[server.security] if server else "tls",
        "auth": "basic",
        "username": "alice@example.com",
        "password": "s3cret",
        "from_address": "alice@example.com",
        "admin_address": "admin@example.com",
        "version": 1,
    }
    values.update(overrides)
    return MailSettings(**values)


def message(**kwargs) -> EmailMessage:
    kwargs.setdefault("to", ["bob@example.com"])
    return EmailMessage("Hello", "Body", "alice@example.com", **kwargs)


def send(config: MailSettings, *messages: EmailMessage, **kwargs) -> Transcript:
    transcript = Transcript()
    with SmtpTransport(config, transcript=transcript, **kwargs) as transport:
        for item in messages or (message(),):
            transport.send(item)
    return transcript


def failing(config: MailSettings, error: type[Exception], **kwargs) -> Exception:
    transcript = Transcript()
    with (
        pytest.raises(error) as caught,
        SmtpTransport(config, transcript=transcript, **kwargs) as transport,
    ):
        transport.send(message())
    assert not transcript.ok
    return caught.value


class StaticTokens:
    """A token provider that hands out one fixed token (the interface, not our code)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.calls = 0

    def get_token(self, transcript=None) -> AccessToken:
        self.calls += 1
        return AccessToken(self.token, account="alice@example.com")


@pytest.mark.parametrize("security", ["ssl", "starttls", "plain"])
def test_sends_with_each_connection_security(smtp_server_factory, trust_test_ca, security):
    server = smtp_server_factory(security=security, users={"alice@example.com": "s3cret"})
    transcript = send(smtp_config(server))
    assert transcript.ok
    assert server.messages[0].rcpt_tos == ["bob@example.com"]
    assert server.messages[0].auth_user == "alice@example.com"
    steps = [step.name for step in transcript.steps]
    assert steps[:2] == ["Resolve host", "Connect"]
    assert "Send message" in steps


def test_lines_starting_with_a_dot_arrive_intact(smtp_starttls, trust_test_ca):
    # A lone "." would end the message early; the sender must double leading dots.
    body = "Totals:\n.\n..hidden\n.net is not a typo\nend"
    send(smtp_config(smtp_starttls), EmailMessage("Dots", body, None, ["bob@example.com"]))
    received = smtp_starttls.messages[0].message.get_content()
    assert received.replace("\r\n", "\n").rstrip("\n") == body


def test_transcript_describes_tls_and_capabilities(smtp_starttls, trust_test_ca):
    transcript = send(smtp_config(smtp_starttls))
    details = " ".join(detail for step in transcript.steps for detail in step.details)
    assert "TLSv1." in details
    assert "Certificate valid until" in details
    assert "Server offers" in details and "AUTH" in details
    assert "AUTH PLAIN as alice@example.com: accepted" in details
    assert "s3cret" not in details


def test_sends_without_authentication_when_username_and_password_are_empty(
    smtp_server_factory, trust_test_ca
):
    server = smtp_server_factory(security="starttls")
    transcript = send(smtp_config(server, username="", password=""))
    assert transcript.ok and server.messages[0].auth_user is None


def test_uses_login_when_plain_is_not_offered(smtp_server_factory, trust_test_ca):
    server = smtp_server_factory(
        security="ssl", users={"alice@example.com": "s3cret"}, exclude_mechanisms=("PLAIN",)
    )
    send(smtp_config(server))
    assert server.auth_mechanisms == ["LOGIN"]


def test_xoauth2_sends_the_exact_sasl_string(smtp_server_factory, trust_test_ca):
    seen = []
    server = smtp_server_factory(
        security="starttls", token_checker=lambda user, token: seen.append((user, token)) or True
    )
    long_token = "eyJ" + "x" * 2500  # real access tokens are JWTs of 1-3 KB
    tokens = StaticTokens(long_token)
    send(smtp_config(server, auth="oauth", password=""), token_provider=tokens)
    assert seen == [("alice@example.com", long_token)]
    assert server.auth_mechanisms == ["XOAUTH2"]


def test_xoauth2_rejected_token_is_explained(smtp_server_factory, trust_test_ca):
    server = smtp_server_factory(security="starttls", token_checker=lambda user, token: False)
    error = failing(
        smtp_config(server, auth="oauth"), AuthenticationError, token_provider=StaticTokens("bad")
    )
    assert error.code == "535"
    assert "Username must be the account" in error.hint


def test_oauth_without_a_token_provider_is_a_configuration_error(smtp_starttls, trust_test_ca):
    failing(smtp_config(smtp_starttls, auth="oauth"), ConfigurationError)


def test_one_connection_for_many_messages(smtp_starttls, trust_test_ca):
    send(smtp_config(smtp_starttls), *[message() for _ in range(5)])
    assert smtp_starttls.connections == 1
    assert len(smtp_starttls.messages) == 5


def test_bcc_only_in_the_envelope(smtp_starttls, trust_test_ca):
    send(smtp_config(smtp_starttls), message(cc=["carol@example.com"], bcc=["dave@example.com"]))
    received = smtp_starttls.messages[0]
    assert received.rcpt_tos == ["bob@example.com", "carol@example.com", "dave@example.com"]
    assert "dave@example.com" not in received.data.decode()


def test_wrong_password(smtp_starttls, trust_test_ca):
    error = failing(smtp_config(smtp_starttls, password="wrong"), AuthenticationError)
    assert error.code == "535"


@pytest.mark.parametrize(
    ("reply", "error", "hint_fragment"),
    [
        (
            "535 5.7.139 Authentication unsuccessful, SMTP AUTH is disabled for the tenant.",
            AuthorizationError,
            "API mode",
        ),
        ("535 5.7.3 Authentication unsuccessful", AuthenticationError, "Username"),
        (
            "535 5.7.8 Username and Password not accepted. Learn more at https://support.google.com",
            AuthenticationError,
            "app password",
        ),
        (
            "550 5.7.30 Basic authentication is not supported for Client Submission.",
            AuthenticationError,
            "OAuth",
        ),
    ],
)
def test_provider_auth_replies_are_explained(
    smtp_starttls, trust_test_ca, reply, error, hint_fragment
):
    smtp_starttls.injections.auth_reply = reply
    raised = failing(smtp_config(smtp_starttls), error)
    assert hint_fragment in raised.hint
    assert raised.provider_text == reply[4:]


def test_auth_required(smtp_starttls, trust_test_ca):
    error = failing(smtp_config(smtp_starttls, username="", password=""), AuthenticationError)
    assert error.code == "530"
    assert "Choose Basic or OAuth" in error.hint


@pytest.mark.parametrize(
    "reply",
    [
        "550 5.7.60 SMTP; Client does not have permissions to send as this sender",
        "554 5.7.1 Sender address rejected: not owned by user",
    ],
)
def test_sender_not_allowed_is_explained(smtp_starttls, trust_test_ca, reply):
    smtp_starttls.injections.mail_from_reply = reply
    error = failing(smtp_config(smtp_starttls), AuthorizationError)
    assert "Send As" in error.hint


def test_refused_recipient(smtp_starttls, trust_test_ca):
    smtp_starttls.injections.rcpt_replies["bob@example.com"] = "550 5.1.1 User unknown"
    error = failing(smtp_config(smtp_starttls), RecipientsRefused)
    assert error.step == "Recipients"


def test_partly_refused_recipients_still_get_the_message(smtp_starttls, trust_test_ca):
    smtp_starttls.injections.rcpt_replies["bob@example.com"] = "550 5.1.1 User unknown"
    transcript = send(
        smtp_config(smtp_starttls), message(to=["bob@example.com", "eve@example.com"])
    )
    assert smtp_starttls.messages[0].rcpt_tos == ["eve@example.com"]
    assert any(
        "Refused recipients: bob@example.com" in d for s in transcript.steps for d in s.details
    )


def test_a_failed_message_leaves_the_connection_usable(smtp_starttls, trust_test_ca):
    with SmtpTransport(smtp_config(smtp_starttls)) as transport:
        smtp_starttls.injections.rcpt_replies["bob@example.com"] = "550 5.1.1 User unknown"
        with pytest.raises(RecipientsRefused):
            transport.send(message())
        smtp_starttls.injections.rcpt_replies.clear()
        transport.send(message())
    assert len(smtp_starttls.messages) == 1 and smtp_starttls.connections == 1


def test_tls_required_but_not_offered(smtp_plain, trust_test_ca):
    error = failing(smtp_config(smtp_plain, security="tls"), TLSError)
    assert error.code == "NO-STARTTLS"
    assert smtp_plain.messages == []


def test_wrong_certificate_host(smtp_server_factory, trust_test_ca):
    server = smtp_server_factory(security="starttls", cert_hostnames=("wrong.example",))
    error = failing(smtp_config(server), TLSError)
    assert error.code == "CERTIFICATE"
    assert "not issued for localhost" in error.hint


def test_untrusted_certificate(smtp_ssl, settings):
    settings.MAILCONFIG_CA_FILE = None  # the system store does not know the test CA
    error = failing(smtp_config(smtp_ssl), TLSError)
    assert "MAILCONFIG_CA_FILE" in error.hint


def test_ssl_against_a_starttls_port(smtp_starttls, trust_test_ca):
    error = failing(smtp_config(smtp_starttls, security="ssl"), TLSError)
    assert "587" in error.hint


def test_connection_refused():
    error = failing(smtp_config(None), MailConnectionError)
    assert error.code == "ECONNREFUSED"
    assert "Port Number" in error.hint


def test_dns_failure():
    error = failing(smtp_config(None, server_name="no-such-host.invalid"), MailConnectionError)
    assert error.code == "DNS"


def test_timeout_is_bounded():
    with BlackHoleServer() as black_hole:
        config = smtp_config(None, server_name="127.0.0.1", port=black_hole.port)
        started = time.monotonic()
        error = failing(config, MailConnectionError, timeout=0.5)
    assert error.code == "TIMEOUT"
    assert time.monotonic() - started < 3


def test_unicode_names_and_subject(smtp_starttls, trust_test_ca):
    item = EmailMessage(
        "Grüße — 你好", "Körper ✓", "Zoë Mailer <alice@example.com>", ["Jürgen <bob@example.com>"]
    )
    send(smtp_config(smtp_starttls), item)
    received = smtp_starttls.messages[0].message
    assert received["Subject"] == "Grüße — 你好"
    assert received.get_content().strip() == "Körper ✓"
    assert str(received["To"]) == "Jürgen <bob@example.com>"


def test_no_secret_in_transcript_or_errors(smtp_starttls, trust_test_ca):
    config = dataclasses.replace(smtp_config(smtp_starttls), password="CANARY-pw-123")
    transcript = Transcript()
    with pytest.raises(AuthenticationError) as caught, SmtpTransport(config, transcript=transcript):
        pass
    assert "CANARY" not in repr(transcript) + str(caught.value) + repr(config)


# Non-ASCII credentials: SASL carries UTF-8 (smtplib's own auth() would crash on them).

UNICODE_USERS = {"jürgen@example.com": "pässwört-✓"}


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_non_ascii_username_and_password_sign_in(smtp_server_factory, trust_test_ca, mechanism):
    other = "LOGIN" if mechanism == "PLAIN" else "PLAIN"
    server = smtp_server_factory(
        security="starttls", users=UNICODE_USERS, exclude_mechanisms=(other,)
    )
    config = smtp_config(server, username="jürgen@example.com", password="pässwört-✓")
    transcript = send(config)
    assert transcript.ok
    assert server.auth_mechanisms == [mechanism]
    assert server.messages[0].auth_user == "jürgen@example.com"


def test_wrong_non_ascii_password_is_an_authentication_error(smtp_starttls, trust_test_ca):
    error = failing(smtp_config(smtp_starttls, password="pässwört"), AuthenticationError)
    assert error.code == "535"


def test_xoauth2_refused_token_gets_the_empty_line_then_535(smtp_server_factory, trust_test_ca):
    server = smtp_server_factory(security="ssl", token_checker=lambda user, token: False)
    error = failing(
        smtp_config(server, auth="oauth"), AuthenticationError, token_provider=StaticTokens("t")
    )
    assert error.code == "535"
    assert server.auth_failures == 1
    assert server.connections == 1  # refused at AUTH, not by a broken exchange


# Send As refused: Exchange Online answers at the end of DATA, Postfix at MAIL FROM.

SEND_AS_REPLIES = [
    "554 5.2.252 SendAsDenied; alice@example.com not allowed to send as other@example.com; "
    "STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied",
    "553 5.7.1 <other@example.com>: Sender address rejected: not owned by user alice@example.com",
    "550 5.7.60 SMTP; Client does not have permissions to send as this sender",
]


@pytest.mark.parametrize("reply", SEND_AS_REPLIES)
@pytest.mark.parametrize("at", ["mail_from_reply", "data_reply"])
def test_send_as_refusal_is_explained_wherever_it_comes(smtp_starttls, trust_test_ca, reply, at):
    setattr(smtp_starttls.injections, at, reply)
    transcript = Transcript()
    with (
        pytest.raises(AuthorizationError) as caught,
        SmtpTransport(smtp_config(smtp_starttls), transcript=transcript) as transport,
    ):
        transport.send(message())
    assert caught.value.hint == SEND_AS_HINT
    failed = next(step for step in transcript.steps if not step.ok)
    assert failed.hint == SEND_AS_HINT
    assert failed.provider_text == reply[4:]


def test_postfix_not_logged_in_asks_for_authentication(smtp_starttls, trust_test_ca):
    smtp_starttls.injections.mail_from_reply = (
        "553 5.7.1 <alice@example.com>: Sender address rejected: not logged in"
    )
    error = failing(smtp_config(smtp_starttls), AuthenticationError)
    assert "Choose Basic or OAuth" in error.hint


# Messages the server never sees.


def test_a_message_without_recipients_is_refused_before_the_server_sees_it(
    smtp_starttls, trust_test_ca
):
    empty = EmailMessage("Hello", "Body", "alice@example.com", to=[])
    with SmtpTransport(smtp_config(smtp_starttls)) as transport:
        with pytest.raises(RecipientsRefused) as caught:
            transport.send(empty)
        assert caught.value.code == "NO-RECIPIENTS"
        transport.send(message())  # the connection is still usable
    assert len(smtp_starttls.messages) == 1


def test_an_invalid_recipient_address_is_a_mail_error(smtp_starttls, trust_test_ca):
    with SmtpTransport(smtp_config(smtp_starttls)) as transport, pytest.raises(RecipientsRefused):
        transport.send(message(to=["bob@example.com\nBcc: eve@example.com"]))
    assert smtp_starttls.messages == []


# Connecting to what was resolved, within the time given.


def test_connects_to_the_resolved_address_and_checks_the_certificate_for_the_name(
    smtp_ssl, trust_test_ca
):
    transcript = send(smtp_config(smtp_ssl))
    details = [d for step in transcript.steps for d in step.details]
    assert f"Connected to localhost:{smtp_ssl.port} (127.0.0.1) with implicit TLS (SSL)" in details


def test_certificate_is_checked_for_the_configured_name_not_the_address(
    smtp_server_factory, trust_test_ca
):
    server = smtp_server_factory(security="ssl", cert_hostnames=("127.0.0.1",))
    error = failing(smtp_config(server), TLSError)
    assert "not issued for localhost" in error.hint


def test_a_server_that_stops_answering_mid_message_times_out(smtp_starttls, trust_test_ca):
    smtp_starttls.injections.delays["DATA"] = 60  # its reply to the end of the data
    started = time.monotonic()
    error = failing(smtp_config(smtp_starttls), MailConnectionError, timeout=0.5, data_timeout=1.0)
    assert error.code == "TIMEOUT" and error.step == "Message data"
    assert "did not confirm the message within 1 seconds" in error.message
    assert time.monotonic() - started < 3


def test_each_resolved_address_is_tried_in_order(smtp_plain):
    # Like socket.create_connection: an address that refuses is skipped for the next one.
    refused = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", refused_port()))
    serving = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", smtp_plain.port))
    with connect_first([refused, serving], lambda: 2.0) as sock:
        assert sock.getpeername() == ("127.0.0.1", smtp_plain.port)
    with pytest.raises(ConnectionRefusedError):
        connect_first([refused], lambda: 2.0)
