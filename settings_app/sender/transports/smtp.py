"""SMTP: implicit TLS (SSL), STARTTLS (TLS, required) or plain; Basic, no auth or XOAUTH2."""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
from datetime import UTC, datetime
from typing import Any

from django.core.mail import EmailMessage
from django.core.mail.message import sanitize_address

from oauth.tokens import TokenProvider
from settings_app.errors import ConfigurationError, MailError, TLSError
from settings_app.models import Provider, Security
from settings_app.sender.diagnosis import network_error, smtp_reply_error
from settings_app.transcript import Transcript
from settings_app.values import MailSettings

from .base import Transport

# Tried in this order when the server offers several; CRAM-MD5 would need the
# password kept reversibly anyway and adds nothing over TLS.
BASIC_MECHANISMS = ("PLAIN", "LOGIN")


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """A client context that verifies the certificate and the host name, always."""
    return ssl.create_default_context(cafile=ca_file or None)


def describe_tls(sock: ssl.SSLSocket) -> list[str]:
    """Protocol, cipher and certificate facts for the transcript."""
    cert: dict[str, Any] = sock.getpeercert() or {}
    subject = dict(item[0] for item in cert.get("subject", ()))
    issuer = dict(item[0] for item in cert.get("issuer", ()))
    cipher = sock.cipher()
    details = [f"{sock.version()} with {cipher[0] if cipher else 'unknown cipher'}"]
    names = [
        value for kind, value in cert.get("subjectAltName", ()) if kind in ("DNS", "IP Address")
    ]
    details.append(
        "Certificate for "
        + (subject.get("commonName") or ", ".join(names[:3]) or "(no name)")
        + (f", issued by {issuer['commonName']}" if issuer.get("commonName") else "")
    )
    if cert.get("notAfter"):
        expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), UTC)
        details.append(f"Certificate valid until {expires:%Y-%m-%d}")
    return details


def xoauth2_string(user: str, token: str) -> str:
    """The SASL XOAUTH2 initial response (smtplib base64-encodes it)."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


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
    ) -> None:
        super().__init__(config, timeout=timeout, ca_file=ca_file, transcript=transcript)
        self.token_provider = token_provider
        self.connection: smtplib.SMTP | None = None

    @property
    def host(self) -> str:
        return self.config.server_name

    @property
    def port(self) -> int:
        return self.config.port or {Security.SSL: 465, Security.TLS: 587}.get(
            self.config.security, 25
        )

    def open(self) -> None:
        if self.connection is not None:
            return
        if not self.host:
            raise ConfigurationError(
                "No Server Name or IP is configured.", step="Connect", hint="Enter the SMTP server."
            )
        self._resolve()
        connection = self._connect()
        try:
            self._ehlo(connection)
            if self.config.security == Security.TLS:
                self._starttls(connection)
            self._authenticate(connection)
        except BaseException:
            _quietly_close(connection)
            raise
        self.connection = connection

    def _resolve(self) -> None:
        with self.transcript.step("Resolve host") as step:
            try:
                infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            except OSError as err:
                raise network_error(
                    "Resolve host", err, self.host, self.port, self.timeout
                ) from err
            addresses = sorted({info[4][0] for info in infos})
            step.details.append(f"{self.host} is {', '.join(addresses[:4])}")

    def _connect(self) -> smtplib.SMTP:
        implicit_tls = self.config.security == Security.SSL
        with self.transcript.step("Connect") as step:
            try:
                if implicit_tls:
                    connection: smtplib.SMTP = smtplib.SMTP_SSL(
                        self.host,
                        self.port,
                        timeout=self.timeout,
                        context=tls_context(self.ca_file),
                    )
                else:
                    connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            except (OSError, smtplib.SMTPException) as err:
                raise self._failure("Connect", err) from err
            step.details.append(
                f"Connected to {self.host}:{self.port}"
                + (" with implicit TLS (SSL)" if implicit_tls else "")
            )
        if implicit_tls:
            with self.transcript.step("TLS") as step:
                step.details.extend(describe_tls(connection.sock))
        elif self.config.security != Security.TLS:
            with self.transcript.step("TLS") as step:
                step.details.append("None selected: the connection is not encrypted.")
        return connection

    def _ehlo(self, connection: smtplib.SMTP) -> None:
        with self.transcript.step("EHLO") as step:
            try:
                code, reply = connection.ehlo()
                if not 200 <= code < 300:
                    code, reply = connection.helo()
            except (OSError, smtplib.SMTPException) as err:
                raise self._failure("EHLO", err) from err
            if not 200 <= code < 300:
                raise smtp_reply_error("EHLO", code, reply)
            step.details.append("Server offers: " + _capabilities(connection))

    def _starttls(self, connection: smtplib.SMTP) -> None:
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
            try:
                connection.starttls(context=tls_context(self.ca_file))
                connection.ehlo()
            except smtplib.SMTPResponseException as err:
                raise smtp_reply_error("STARTTLS", err.smtp_code, err.smtp_error) from err
            except (OSError, smtplib.SMTPException) as err:
                raise self._failure("STARTTLS", err) from err
            step.details.extend(describe_tls(connection.sock))
            step.details.append("Server offers after STARTTLS: " + _capabilities(connection))

    def _authenticate(self, connection: smtplib.SMTP) -> None:
        if self.config.uses_smtp_oauth:
            self._xoauth2(connection)
        elif self.config.username:
            self._basic(connection)
        else:
            with self.transcript.step("Authenticate") as step:
                step.details.append("No username: sending without authentication.")

    def _basic(self, connection: smtplib.SMTP) -> None:
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
            connection.user, connection.password = self.config.username, self.config.password
            authobject = getattr(connection, f"auth_{mechanism.lower()}")
            self._auth(connection, mechanism, authobject)
            step.details.append(f"AUTH {mechanism} as {self.config.username}: accepted")

    def _xoauth2(self, connection: smtplib.SMTP) -> None:
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
            initial = xoauth2_string(user, token.token)

            # smtplib calls this again with the server's 334 error challenge; the
            # protocol then wants an empty line, after which the server says 535.
            def authobject(challenge: bytes | None = None) -> str:
                return initial if challenge is None else ""

            self._auth(connection, "XOAUTH2", authobject)
            step.details.append(f"AUTH XOAUTH2 as {user}: accepted")

    def _xoauth2_user(self, account: str) -> str:
        # Google's page has no Username: the account that authorized is the sender.
        # Microsoft signs in as the Username (the page warns when the grant differs).
        if self.config.oauth_provider == Provider.GOOGLE and account:
            return account
        return self.config.username or account

    def _auth(self, connection: smtplib.SMTP, mechanism: str, authobject: Any) -> None:
        try:
            connection.auth(mechanism, authobject, initial_response_ok=True)
        except smtplib.SMTPResponseException as err:
            raise smtp_reply_error("Authenticate", err.smtp_code, err.smtp_error) from err
        except (OSError, smtplib.SMTPException) as err:
            raise self._failure("Authenticate", err) from err

    def send(self, message: EmailMessage) -> str:
        if self.connection is None:
            self.open()
        assert self.connection is not None
        encoding = message.encoding or "utf-8"
        sender = sanitize_address(message.from_email or self.config.from_address, encoding)
        recipients = [sanitize_address(address, encoding) for address in message.recipients()]
        data = message.message().as_bytes(linesep="\r\n")
        with self.transcript.step("Send message") as step:
            reply = self._transaction(self.connection, sender, recipients, data, step.details)
            step.details.append(f"Accepted by the server: {reply}")
        return reply

    def _transaction(
        self,
        connection: smtplib.SMTP,
        sender: str,
        recipients: list[str],
        data: bytes,
        details: list[str],
    ) -> str:
        """MAIL, RCPT for each recipient (Bcc included: envelope only), DATA; like sendmail()."""
        options = [f"size={len(data)}"] if connection.has_extn("size") else []
        try:
            code, reply = connection.mail(sender, options)
            if code != 250:
                raise smtp_reply_error("Sender", code, reply)
            refused: list[str] = []
            for recipient in recipients:
                code, reply = connection.rcpt(recipient)
                if code not in (250, 251):
                    refused.append(recipient)
                    last_refusal = smtp_reply_error("Recipients", code, reply)
            if len(refused) == len(recipients):
                raise last_refusal
            if refused:
                # Like smtplib.sendmail: the others still get the message.
                details.append(f"Refused recipients: {', '.join(refused)}")
            code, reply = connection.data(data)
            if code != 250:
                raise smtp_reply_error("Message data", code, reply)
        except MailError:
            _reset(connection)
            raise
        except smtplib.SMTPResponseException as err:
            _reset(connection)
            raise smtp_reply_error("Send message", err.smtp_code, err.smtp_error) from err
        except (OSError, smtplib.SMTPException) as err:
            raise self._failure("Send message", err) from err
        return f"{code} {reply.decode('utf-8', 'replace')}"

    def close(self) -> None:
        if self.connection is not None:
            connection, self.connection = self.connection, None
            _quietly_close(connection, polite=True)

    def _failure(self, step: str, err: BaseException) -> MailError:
        if isinstance(err, smtplib.SMTPServerDisconnected):
            # smtplib turns a read timeout into "Connection unexpectedly closed: timed out".
            timed_out = "timed out" in str(err)
            cause = TimeoutError() if timed_out else ConnectionResetError(str(err))
            return network_error(step, cause, self.host, self.port, self.timeout)
        if isinstance(err, smtplib.SMTPResponseException):
            return smtp_reply_error(step, err.smtp_code, err.smtp_error)
        return network_error(step, err, self.host, self.port, self.timeout)


def _capabilities(connection: smtplib.SMTP) -> str:
    features = connection.esmtp_features
    parts = [f"{name.upper()} {value}".strip() for name, value in features.items()]
    return ", ".join(parts) or "(no extensions)"


def _auth_mechanisms(connection: smtplib.SMTP) -> set[str]:
    return set(connection.esmtp_features.get("auth", "").upper().split())


def _reset(connection: smtplib.SMTP) -> None:
    # Leaves the connection usable for the next message of the batch.
    with contextlib.suppress(OSError, smtplib.SMTPException):
        connection.rset()


def _quietly_close(connection: smtplib.SMTP, *, polite: bool = False) -> None:
    try:
        if polite:
            connection.quit()
    except (OSError, smtplib.SMTPException):
        pass
    finally:
        connection.close()
