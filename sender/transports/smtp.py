"""SMTP: implicit TLS (SSL), STARTTLS (TLS, required) or plain; Basic, no auth or XOAUTH2."""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import re
import smtplib
import ssl
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.message import sanitize_address
from django.db import DatabaseError

from sender import deadline
from sender.errors import (
    ConfigurationError,
    MailConnectionError,
    MailError,
    RecipientsRefused,
    RefusedRecipient,
    TLSError,
)
from sender.network import (
    AddressInfo,
    PeerCertificate,
    describe_addresses,
    describe_tls,
    lookup,
    peer_certificate,
    tls_context,
)
from sender.network_errors import network_error
from sender.redaction import Redactor
from sender.smtp_replies import smtp_reply_error
from sender.tokens import TokenProvider
from sender.transcript import Transcript
from settings_app.models import DEFAULT_PORTS, Provider, Security, ServerCertificateSeen
from settings_app.values import MailSettings

from .base import Accepted, Transport
from .smtp_connection import BoundedReplies, ResolvedSMTP, ResolvedSMTP_SSL

logger = logging.getLogger(__name__)

# Tried in this order when the server offers several; CRAM-MD5 would need the
# password kept reversibly anyway and adds nothing over TLS.
BASIC_MECHANISMS = ("PLAIN", "LOGIN")
# Like smtplib's limit: a server that keeps challenging is broken, not slow.
MAX_SASL_CHALLENGES = 5
DOT_AT_LINE_START = re.compile(rb"(?m)^\.")


def xoauth2_string(user: str, token: str) -> str:
    """The SASL XOAUTH2 initial response (before base64)."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


@lru_cache(maxsize=1024)
def envelope_address(address: str, encoding: str) -> str:
    """``sanitize_address`` remembered: a batch repeats the same sender (and often recipients),
    and Django's version parses and re-encodes the address every time."""
    return sanitize_address(address, encoding)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(reply: bytes) -> bytes:
    try:
        return base64.b64decode(reply)
    except (binascii.Error, ValueError):
        return b""


class SmtpTransport(Transport):
    """Sends over one SMTP connection; ``open()`` connects, secures and authenticates."""

    def __init__(
        self,
        config: MailSettings,
        *,
        token_provider: TokenProvider | None = None,
        transcript: Transcript | None = None,
        timeout: float | None = None,
        ca_file: str | None = None,
        data_timeout: float | None = None,
    ) -> None:
        super().__init__(config, timeout=timeout, ca_file=ca_file, transcript=transcript)
        self.token_provider = token_provider
        # The wait for the reply to the final dot, instead of ``timeout`` (see _data()).
        self.data_timeout = (
            data_timeout if data_timeout is not None else settings.MAILCONFIG_DATA_TIMEOUT
        )
        self.connection: BoundedReplies | None = None
        self._size_extension = False
        # The server's TLS certificate, once a TLS handshake succeeded.
        self.peer_certificate: PeerCertificate | None = None
        # Hides the secrets, and what was sent for them at AUTH, in every reply passed on.
        self.redactor = Redactor(config.secret_values)

    @property
    def host(self) -> str:
        return self.config.server_name

    @property
    def port(self) -> int:
        return self.config.port or DEFAULT_PORTS.get(self.config.security, 25)

    def open(self) -> None:
        if self.connection is not None:
            return
        if not self.host:
            raise ConfigurationError(
                "No Server Name or IP is configured.", step="Connect", hint="Enter the SMTP server."
            )
        # Anew for each connection: a long-lived transport would otherwise collect every
        # token it ever sent.
        self.redactor = Redactor(self.config.secret_values)
        addresses = self._resolve()
        connection = self._connect(addresses)
        try:
            self._ehlo(connection)
            if self.config.security == Security.TLS:
                self._starttls(connection)
            self._authenticate(connection)
        except BaseException:
            _quietly_close(connection)
            raise
        self._size_extension = connection.has_extn("size")
        self.connection = connection

    def _limit(self, connection: BoundedReplies, step: str, timeout: float | None = None) -> None:
        """Give the next command the step's timeout (``self.timeout`` unless given), or less
        when the time limit runs out.

        The connection asks again before each read of the reply (``BoundedReplies``).
        """
        connection.step = step
        connection.step_timeout = timeout if timeout is not None else self.timeout
        connection.use_timeout(deadline.remaining(connection.step_timeout, step))

    def _resolve(self) -> list[AddressInfo]:
        with self.transcript.step("Resolve host") as step:
            infos = lookup(self.host, self.port, self.timeout, "Resolve host")
            step.details.append(describe_addresses(self.host, infos))
        return infos

    def _connect(self, addresses: list[AddressInfo]) -> BoundedReplies:
        implicit_tls = self.config.security == Security.SSL

        def timeout() -> float:
            return deadline.remaining(self.timeout, "Connect")

        with self.transcript.step("Connect") as step:
            try:
                if implicit_tls:
                    connection: BoundedReplies = ResolvedSMTP_SSL(
                        self.host,
                        self.port,
                        addresses,
                        timeout,
                        self.timeout,
                        context=tls_context(self.ca_file),
                    )
                else:
                    connection = ResolvedSMTP(
                        self.host, self.port, addresses, timeout, self.timeout
                    )
            except (OSError, smtplib.SMTPException) as err:
                raise self._failure("Connect", err) from err
            peer = connection.sock.getpeername()[0] if connection.sock else self.host
            step.details.append(
                f"Connected to {self.host}:{self.port}"
                + (f" ({peer})" if peer != self.host else "")
                + (" with implicit TLS (SSL)" if implicit_tls else "")
            )
        if implicit_tls:
            with self.transcript.step("TLS") as step:
                step.details.extend(describe_tls(_tls_socket(connection)))
                self._saw_certificate(connection)
        elif self.config.security != Security.TLS:
            with self.transcript.step("TLS") as step:
                step.details.append("None selected: the connection is not encrypted.")
        return connection

    def _ehlo(self, connection: BoundedReplies) -> None:
        with self.transcript.step("EHLO") as step:
            self._limit(connection, "EHLO")
            try:
                code, reply = connection.ehlo()
                if not 200 <= code < 300:
                    code, reply = connection.helo()
            except (OSError, smtplib.SMTPException) as err:
                raise self._failure("EHLO", err) from err
            if not 200 <= code < 300:
                raise smtp_reply_error("EHLO", code, reply)
            step.details.append("Server offers: " + _capabilities(connection))

    def _starttls(self, connection: BoundedReplies) -> None:
        with self.transcript.step("STARTTLS") as step:
            if not connection.has_extn("starttls"):
                # Never fall back to plain text: the password would cross the network in clear.
                raise TLSError(
                    "The server does not offer STARTTLS, and TLS was selected.",
                    step="STARTTLS",
                    code="NO-STARTTLS",
                    hint="Use the server's STARTTLS port (usually 587) or its SSL port "
                    "(usually 465, choose SSL). Choosing None would send credentials unencrypted.",
                )
            self._limit(connection, "STARTTLS")
            try:
                connection.starttls(context=tls_context(self.ca_file))
                self._limit(connection, "STARTTLS")
                connection.ehlo()
            except smtplib.SMTPResponseException as err:
                raise smtp_reply_error("STARTTLS", err.smtp_code, err.smtp_error) from err
            except (OSError, smtplib.SMTPException) as err:
                raise self._failure("STARTTLS", err) from err
            step.details.extend(describe_tls(_tls_socket(connection)))
            self._saw_certificate(connection)
            step.details.append("Server offers after STARTTLS: " + _capabilities(connection))

    def remember_certificate(self) -> None:
        """Record the server certificate's expiry for the expiry radar, if TLS got that far.

        Test Mail and Check permissions call it; normal sending does not write here.
        """
        seen = self.peer_certificate
        if seen is None:
            return
        try:
            ServerCertificateSeen.remember(seen.host, seen.port, seen.subject, seen.not_after)
        except DatabaseError as fault:  # the test's result matters more than this note
            logger.warning("Server certificate expiry not recorded: %s", fault)

    def _saw_certificate(self, connection: BoundedReplies) -> None:
        # Kept for Test Mail and Check permissions, which record it for the expiry radar.
        self.peer_certificate = peer_certificate(_tls_socket(connection), self.host, self.port)

    def _authenticate(self, connection: BoundedReplies) -> None:
        if self.config.uses_xoauth2:
            self._xoauth2(connection)
        elif self.config.username:
            self._basic(connection)
        else:
            with self.transcript.step("Authenticate") as step:
                step.details.append("No username: sending without authentication.")

    def _basic(self, connection: BoundedReplies) -> None:
        with self.transcript.step("Authenticate") as step:
            offered = _auth_mechanisms(connection)
            mechanism = next((m for m in BASIC_MECHANISMS if m in offered), None)
            if mechanism is None:
                raise MailError(
                    "The server offers no password authentication here"
                    + (f" (it offers {', '.join(sorted(offered))})." if offered else "."),
                    step="Authenticate",
                    code="NO-AUTH",
                    hint="Servers often offer AUTH only after TLS: choose TLS or SSL. If the "
                    "server only offers XOAUTH2, choose OAuth.",
                )
            username = self.config.username.encode("utf-8")
            password = self.config.password.encode("utf-8")
            if mechanism == "PLAIN":
                # RFC 4616: empty authorization identity, then username and password, in UTF-8.
                initial = b"\0" + username + b"\0" + password
                self._sasl(
                    connection, "PLAIN", initial, lambda _: initial, secret=self.config.password
                )
            else:
                # LOGIN: the username with the command, the password on the server's challenge.
                self._sasl(
                    connection, "LOGIN", username, lambda _: password, secret=self.config.password
                )
            step.details.append(f"AUTH {mechanism} as {self.config.username}: accepted")

    def _xoauth2(self, connection: BoundedReplies) -> None:
        if self.token_provider is None:
            self.transcript.fail(
                "Obtain token",
                error := ConfigurationError(
                    "OAuth is selected but no authorization is available.",
                    step="Obtain token",
                    hint="Save the settings and complete the authorization (Authorize).",
                ),
            )
            raise error
        token = self.token_provider.get_token(self.transcript)
        with self.transcript.step("Authenticate") as step:
            if "XOAUTH2" not in _auth_mechanisms(connection):
                raise MailError(
                    "The server does not offer XOAUTH2 authentication.",
                    step="Authenticate",
                    code="NO-XOAUTH2",
                    hint="Check the Server Name: Microsoft 365 is smtp.office365.com, Gmail "
                    "is smtp.gmail.com, both with TLS on port 587.",
                )
            user = self._xoauth2_user(token.account)
            initial = xoauth2_string(user, token.token).encode("utf-8")
            # A refused token gets a 334 challenge with a JSON error; the protocol then
            # wants an empty line, after which the server says 535.
            try:
                self._sasl(connection, "XOAUTH2", initial, lambda _: b"", secret=token.token)
            except MailError as err:
                # An app-only token is refused for reasons of its own (no service principal,
                # no mailbox permission): its provider knows what to say.
                refused_hint = getattr(self.token_provider, "login_refused_hint", "")
                if refused_hint and err.code == "535" and "5.7.139" not in err.provider_text:
                    err.hint = refused_hint
                raise
            step.details.append(f"AUTH XOAUTH2 as {user}: accepted")

    def _xoauth2_user(self, account: str) -> str:
        # Google's page has no Username: the account that authorized is the sender.
        # Microsoft signs in as the Username (the page warns when the grant differs).
        if self.config.oauth_provider == Provider.GOOGLE and account:
            return account
        return self.config.username or account

    def _sasl(
        self,
        connection: BoundedReplies,
        mechanism: str,
        initial: bytes,
        answer: Callable[[bytes], bytes],
        *,
        secret: str,
    ) -> None:
        """AUTH with an initial response, then answer each 334 challenge; expect 235.

        Done here rather than with ``smtplib.auth()``, which encodes responses as ASCII
        and so crashes on a password such as "pässwört"; SASL carries UTF-8.
        """
        sent = [_b64(initial) or "="]  # RFC 4954: "=" is an empty initial response
        self.transcript.hide(secret, sent[0])
        self.redactor.add(secret, sent[0])
        try:
            self._limit(connection, "Authenticate")
            code, reply = connection.docmd("AUTH", f"{mechanism} {sent[0]}")
            while code == 334:
                if len(sent) > MAX_SASL_CHALLENGES:
                    connection.docmd("*")  # RFC 4954: the client cancels the exchange
                    raise MailError(
                        f"The server kept asking for more data during AUTH {mechanism}.",
                        step="Authenticate",
                        code="334",
                        hint="Check the Server Name and Port Number: this does not behave "
                        "like a mail submission server.",
                    )
                sent.append(_b64(answer(_unb64(reply))))
                self.transcript.hide(sent[-1])
                self.redactor.add(sent[-1])
                self._limit(connection, "Authenticate")
                code, reply = connection.docmd(sent[-1])
        except (OSError, smtplib.SMTPException) as err:
            raise self._failure("Authenticate", err) from err
        if code != 235:
            # A hostile or careless server may echo what it was sent; never pass that on.
            raise _scrubbed(smtp_reply_error("Authenticate", code, reply), self.redactor)

    def send(self, message: EmailMessage) -> Accepted:
        """Send one message; the server's replies, and any error, with every secret hidden."""
        try:
            accepted = self._send(message)
        except MailError as error:
            # A careless or hostile server may echo the credentials in any reply.
            _scrubbed(error, self.redactor)
            raise
        return Accepted(
            self.redactor.redact(accepted.reply), self._scrubbed_refusals(accepted.refused)
        )

    def _scrubbed_refusals(
        self, refused: tuple[RefusedRecipient, ...]
    ) -> tuple[RefusedRecipient, ...]:
        return tuple(RefusedRecipient(r.address, self.redactor.redact(r.reply)) for r in refused)

    def _send(self, message: EmailMessage) -> Accepted:
        if self.connection is not None and self.connection.sock is None:
            # The last message's reply was cut short (time limit, too long) or the server
            # hung up: this message gets a new connection rather than a dead one.
            self.connection = None
        if self.connection is None:
            self.open()
        assert self.connection is not None
        encoding = message.encoding or "utf-8"
        sender = _envelope(message.from_email or self.config.from_address, encoding, "Sender")
        recipients = [_envelope(a, encoding, "Recipients") for a in message.recipients()]
        data = message.message().as_bytes(linesep="\r\n")
        if not self.transcript.enabled:
            # Normal sending keeps no transcript: skip the step's bookkeeping per message.
            return self._transaction(self.connection, sender, recipients, data, [])
        with self.transcript.step("Send message") as step:
            accepted = self._transaction(self.connection, sender, recipients, data, step.details)
            step.details.append(f"Accepted by the server: {accepted.reply}")
        return accepted

    def _transaction(
        self,
        connection: BoundedReplies,
        sender: str,
        recipients: list[str],
        data: bytes,
        details: list[str],
    ) -> Accepted:
        """MAIL, RCPT for each recipient (Bcc included: envelope only), DATA; like sendmail().

        A recipient the server refuses is returned with its reply while the others get the
        message; when it refuses them all, the error names each one."""
        if not recipients:
            raise RecipientsRefused(
                "The message has no recipients.",
                step="Recipients",
                code="NO-RECIPIENTS",
                hint="Give the message at least one To, Cc or Bcc address.",
            )
        options = [f"size={len(data)}"] if self._size_extension else []
        try:
            self._limit(connection, "Sender")
            code, reply = connection.mail(sender, options)
            if code != 250:
                raise smtp_reply_error("Sender", code, reply)
            refused: list[RefusedRecipient] = []
            last_refusal: MailError | None = None
            for recipient in recipients:
                self._limit(connection, "Recipients")
                code, reply = connection.rcpt(recipient)
                if code not in (250, 251):
                    last_refusal = smtp_reply_error("Recipients", code, reply)
                    refused.append(
                        RefusedRecipient(recipient, f"{code} {last_refusal.provider_text}")
                    )
            if last_refusal is not None and len(refused) == len(recipients):
                last_refusal.refused = tuple(refused)
                raise last_refusal
            if refused:
                # Like smtplib.sendmail: the others still get the message.
                details.append(f"Refused recipients: {', '.join(item.address for item in refused)}")
            code, reply = self._data(connection, data)
            if code != 250:
                raise smtp_reply_error("Message data", code, reply)
        except MailConnectionError:
            raise  # out of time: no RSET either
        except MailError:
            _reset(connection)
            raise
        except smtplib.SMTPResponseException as err:
            _reset(connection)
            raise smtp_reply_error("Send message", err.smtp_code, err.smtp_error) from err
        except (OSError, smtplib.SMTPException) as err:
            raise self._failure("Send message", err) from err
        return Accepted(f"{code} {reply.decode('utf-8', 'replace')}", tuple(refused))

    def _data(self, connection: BoundedReplies, data: bytes) -> tuple[int, bytes]:
        """DATA as ``smtplib.SMTP.data()`` does it, giving each wait only the time left.

        smtplib sends the message on the socket timeout set for the go-ahead, so near the
        deadline sending could outlast it; each reply is bounded by ``BoundedReplies``.
        The reply to the final dot may take ``data_timeout`` (within the time limit); a
        failure after the dot says the server may already have the message.
        """
        self._limit(connection, "Message data")
        connection.putcmd("data")
        code, reply = connection.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        # Dot-stuffing (RFC 5321 4.5.2) and the terminating line, as smtplib does.
        payload = DOT_AT_LINE_START.sub(b"..", data)
        if not payload.endswith(b"\r\n"):
            payload += b"\r\n"
        self._limit(connection, "Message data")
        connection.send(payload + b".\r\n")
        # RFC 5321 4.5.3.2.6: a server may take minutes to accept a message after the dot
        # (content checks), and giving up earlier sends the whole message again.
        self._limit(connection, "Message data", self.data_timeout)
        try:
            return connection.getreply()
        except MailConnectionError as err:  # the message's time limit
            raise _unconfirmed(err, deadline.limit_sentence()) from err
        except smtplib.SMTPServerDisconnected as err:
            if "timed out" in str(err):
                error: MailError = MailConnectionError(
                    f"The server did not confirm the message within {self.data_timeout:g} "
                    "seconds after it was sent.",
                    step="Message data",
                    code="TIMEOUT",
                )
                limit = (
                    f"The wait for the server's confirmation is limited to "
                    f"{self.data_timeout:g} seconds (MAILCONFIG_DATA_TIMEOUT)."
                )
            else:
                error, limit = self._failure("Message data", err), ""
            raise _unconfirmed(error, limit) from err
        finally:
            connection.step_timeout = self.timeout

    def close(self) -> None:
        if self.connection is not None:
            connection, self.connection = self.connection, None
            left = deadline.time_left()
            polite = left is None or left > 0
            connection.step = "Close"
            # QUIT may not hold the sender past its time limit, nor past one timeout without one.
            with deadline.time_limit(self.timeout):
                _quietly_close(connection, polite=polite)

    def _failure(self, step: str, err: BaseException) -> MailError:
        if isinstance(err, smtplib.SMTPServerDisconnected):
            # smtplib turns a read timeout into "Connection unexpectedly closed: timed out".
            timed_out = "timed out" in str(err)
            cause = TimeoutError() if timed_out else ConnectionResetError(str(err))
            return network_error(step, cause, self.host, self.port, self.timeout)
        if isinstance(err, smtplib.SMTPResponseException):
            return smtp_reply_error(step, err.smtp_code, err.smtp_error)
        return network_error(step, err, self.host, self.port, self.timeout)


# What every failure after the whole message was sent must say.
MAY_HAVE_IT = (
    "The whole message was sent, but the server did not confirm it: it may already have "
    "the message, and sending it again (the retry, or a resend) can deliver a duplicate "
    "with the same Message-ID."
)


def _unconfirmed(error: MailError, limit: str) -> MailConnectionError:
    """``error`` (a timeout or a lost connection after the final dot) with a hint that says
    the server may have the message."""
    return MailConnectionError(
        error.message,
        step="Message data",
        code=error.code,
        provider_text=error.provider_text,
        hint=" ".join(part for part in (MAY_HAVE_IT, limit) if part),
    )


def _envelope(address: Any, encoding: str, step: str) -> str:
    """An address for MAIL FROM or RCPT TO, or a clear error for one that is not valid."""
    try:
        if isinstance(address, str):
            return envelope_address(address, encoding)
        return sanitize_address(address, encoding)
    except ValueError as err:
        error_class = RecipientsRefused if step == "Recipients" else ConfigurationError
        raise error_class(
            f"The address {address!r} is not valid: {err}",
            step=step,
            code="INVALID-ADDRESS",
            hint="Correct the address (name@domain).",
        ) from err


def _scrubbed(error: MailError, redactor: Redactor) -> MailError:
    """The error without the secrets or anything the client sent (base64 credentials) in
    its texts, however the server cut them up in its reply."""
    error.message = redactor.redact(error.message)
    error.provider_text = redactor.redact(error.provider_text)
    error.refused = tuple(
        RefusedRecipient(item.address, redactor.redact(item.reply)) for item in error.refused
    )
    error.args = (error.message,)
    return error


def _capabilities(connection: BoundedReplies) -> str:
    features = connection.esmtp_features
    parts = [f"{name.upper()} {value}".strip() for name, value in features.items()]
    return ", ".join(parts) or "(no extensions)"


def _auth_mechanisms(connection: BoundedReplies) -> set[str]:
    return set(connection.esmtp_features.get("auth", "").upper().split())


def _reset(connection: BoundedReplies) -> None:
    # Leaves the connection usable for the next message of the batch.
    with contextlib.suppress(OSError, smtplib.SMTPException, MailError):
        connection.rset()


def _quietly_close(connection: BoundedReplies, *, polite: bool = False) -> None:
    try:
        if polite:
            connection.use_timeout(deadline.remaining(connection.step_timeout, connection.step))
            connection.quit()
    except (OSError, smtplib.SMTPException, MailError):
        pass
    finally:
        connection.close()


def _tls_socket(connection: smtplib.SMTP) -> ssl.SSLSocket:
    """The connection's socket once TLS is up (implicit TLS, or after STARTTLS)."""
    sock = connection.sock
    if not isinstance(sock, ssl.SSLSocket):
        raise TypeError("The SMTP connection is not encrypted.")  # a bug: callers check first
    return sock
