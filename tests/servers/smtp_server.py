"""Real SMTP servers for tests: aiosmtpd with trustme certificates, on 127.0.0.1.

``SmtpTestServer`` speaks implicit TLS, STARTTLS or plain SMTP; AUTH PLAIN, LOGIN
and XOAUTH2 (the exact SASL string is checked); and replies with whatever
failure a test injects (Microsoft's and Google's real replies). It records the
messages and counts connections. It works outside pytest too (the benchmark).
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import json
import re
import socket
import ssl
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Self

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.net import free_port

XOAUTH2 = re.compile(r"user=([^\x01]+)\x01auth=Bearer ([^\x01]+)\x01\x01")
XOAUTH2_ERROR = json.dumps(
    {"status": "400", "schemes": "Bearer", "scope": "https://mail.google.com/"}
)
MICROSOFT_AUTH_FAILED = "535 5.7.3 Authentication unsuccessful"


@dataclass
class ReceivedMessage:
    """One message as the server received it: the envelope and the bytes."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    auth_user: str | None

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)


@dataclass
class Injections:
    """Replies a test forces on the server (``None``: behave normally)."""

    auth_reply: str | None = None
    mail_from_reply: str | None = None
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    # Replies at the end of data for messages containing the key (b"Subject: Report"):
    # a server refusing some messages and taking others.
    data_replies_for: dict[bytes, str] = field(default_factory=dict)
    # Seconds to wait before answering "AUTH", "MAIL", "DATA-COMMAND" (the 354 go-ahead)
    # or "DATA" (end of data); a stall is a long wait (stop() cancels it).
    delays: dict[str, float] = field(default_factory=dict)
    # A careless or hostile server: its AUTH failure reply repeats the login and password.
    echo_credentials: bool = False
    # A server with SMTP AUTH turned off: EHLO offers no AUTH at all.
    offer_auth: bool = True


class _RecordingSMTP(SMTP):
    # "AUTH XOAUTH2 <base64 JWT>" is far longer than SMTP's 1000-character lines and
    # aiosmtpd's 512-byte command limit (whose default dict reads the base class).
    line_length_limit = 64 * 1024
    command_size_limit = 64 * 1024
    command_size_limits = defaultdict(lambda: 64 * 1024)

    def __init__(self, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.test_server = handler.server

    def connection_made(self, transport: Any) -> None:
        if self._original_transport is None:  # not the TLS upgrade of a STARTTLS connection
            self.test_server._connected()
        super().connection_made(transport)

    async def smtp_AUTH(self, arg: str) -> None:
        with self.test_server._lock:
            self.test_server.auth_commands += 1
        await self.test_server._delay("AUTH")
        reply = self.test_server.injections.auth_reply
        if reply and self.session is not None and self.session.extended_smtp:
            with self.test_server._lock:
                self.test_server.auth_failures += 1
            await self.push(reply)
            return
        await super().smtp_AUTH(arg)

    async def smtp_DATA(self, arg: str) -> None:
        await self.test_server._delay("DATA-COMMAND")
        await super().smtp_DATA(arg)

    async def auth_XOAUTH2(self, _: Any, args: list[str]) -> AuthResult:
        if len(args) == 2:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except ValueError:
                return AuthResult(
                    success=False, handled=False, message="501 5.5.2 Cannot decode base64"
                )
        else:
            answer = await self.challenge_auth("")
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=True)
            blob = answer
        match = XOAUTH2.fullmatch(blob.decode("utf-8", "replace"))
        checker = self.test_server.token_checker
        if match and checker is not None and checker(match.group(1), match.group(2)):
            self.test_server._authenticated("XOAUTH2")
            return AuthResult(success=True, auth_data=LoginPassword(match.group(1).encode(), b""))
        # Like Gmail and Exchange: a 334 with a JSON error, the client's empty line, then 535.
        await self.challenge_auth(XOAUTH2_ERROR)
        with self.test_server._lock:
            self.test_server.auth_failures += 1
        return AuthResult(success=False, handled=False, message=MICROSOFT_AUTH_FAILED)


class _Handler:
    def __init__(self, server: SmtpTestServer) -> None:
        self.server = server

    async def handle_EHLO(
        self, smtp: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # what aiosmtpd does itself when there is no hook
        self.server.ehlo_names.append(hostname)
        if self.server.injections.offer_auth:
            return responses
        return [line for line in responses if not line[4:].upper().startswith("AUTH")]

    async def handle_MAIL(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        await self.server._delay("MAIL")
        reply = self.server.injections.mail_from_reply
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.server.injections.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        await self.server._delay("DATA")
        reply = self.server.injections.data_reply
        if reply:
            return reply
        content = envelope.original_content or b""
        for key, reply in self.server.injections.data_replies_for.items():
            if key in content:
                return reply
        login = getattr(session.auth_data, "login", None)
        self.server._received(
            ReceivedMessage(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                data=envelope.original_content or b"",
                auth_user=login.decode() if isinstance(login, bytes) else login,
            )
        )
        return "250 2.0.0 OK queued as TEST"


class SmtpTestServer:
    """An SMTP server on 127.0.0.1 for one test (or one benchmark run)."""

    def __init__(
        self,
        *,
        security: str = "starttls",
        ca: trustme.CA | None = None,
        cert_hostnames: tuple[str, ...] = ("localhost", "127.0.0.1"),
        users: dict[str, str] | None = None,
        token_checker: Callable[[str, str], bool] | None = None,
        auth_required: bool | None = None,
        keep_messages: bool = True,
        exclude_mechanisms: tuple[str, ...] = (),
    ) -> None:
        if security not in ("ssl", "starttls", "plain"):
            raise ValueError(f"unknown security {security!r}")
        if security != "plain" and ca is None:
            raise ValueError("TLS servers need a trustme CA")
        self.security = security
        self.host = "127.0.0.1"
        self.port = free_port()
        self.users = dict(users or {})
        self.token_checker = token_checker
        self.keep_messages = keep_messages
        self.injections = Injections()
        self.messages: list[ReceivedMessage] = []
        self.message_count = 0
        self.connections = 0
        self.auth_mechanisms: list[str] = []
        self.auth_failures = 0
        self.auth_commands = 0  # every AUTH command, accepted or refused: each is a sign-in
        self.ehlo_names: list[str] = []  # the name each EHLO gave, in order
        self._lock = threading.Lock()

        server_context = None
        if ca is not None:
            server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert(*cert_hostnames).configure_cert(server_context)
        needs_auth = bool(self.users or token_checker)
        smtp_kwargs: dict[str, Any] = {
            "auth_required": needs_auth if auth_required is None else auth_required,
            "authenticator": self._check_password,
            # Over implicit TLS the socket is already encrypted; plain servers in tests
            # may also take AUTH (a real server usually would not).
            "auth_require_tls": security == "starttls",
            "auth_exclude_mechanism": list(exclude_mechanisms),
        }
        if security == "starttls":
            smtp_kwargs["tls_context"] = server_context
        handler = _Handler(self)

        class _Controller(Controller):
            def factory(inner) -> SMTP:
                return _RecordingSMTP(handler, **inner.SMTP_kwargs)

        self._controller = _Controller(
            handler,
            hostname=self.host,
            port=self.port,
            ssl_context=server_context if security == "ssl" else None,
            server_hostname="localhost",
            **smtp_kwargs,
        )

    # Lifecycle --------------------------------------------------------------
    def start(self) -> Self:
        self._controller.start()
        self.reset()  # the controller's own readiness probe is not a client
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()
            self.message_count = 0
            self.connections = 0
            self.auth_mechanisms.clear()
            self.auth_failures = 0
            self.auth_commands = 0
            self.ehlo_names.clear()
        self.injections = Injections()

    # Called from the server thread -----------------------------------------
    def _check_password(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            # SASL PLAIN and LOGIN carry UTF-8 (RFC 4616), so "pässwört" is a valid password.
            user, password = data.login.decode("utf-8"), data.password.decode("utf-8")
            if user in self.users and self.users[user] == password:
                self._authenticated(mechanism)
                return AuthResult(success=True, auth_data=data)
            if self.injections.echo_credentials:
                with self._lock:
                    self.auth_failures += 1
                return AuthResult(
                    success=False,
                    handled=False,
                    message=f"535 5.7.8 Authentication failed for {user} with password {password}",
                )
        with self._lock:
            self.auth_failures += 1
        return AuthResult(success=False, handled=False)

    async def _delay(self, command: str) -> None:
        seconds = self.injections.delays.get(command)
        if seconds:
            await asyncio.sleep(seconds)

    def _authenticated(self, mechanism: str) -> None:
        with self._lock:
            self.auth_mechanisms.append(mechanism)

    def _connected(self) -> None:
        with self._lock:
            self.connections += 1

    def _received(self, message: ReceivedMessage) -> None:
        with self._lock:
            self.message_count += 1
            if self.keep_messages:
                self.messages.append(message)


class BlackHoleServer:
    """Accepts TCP connections and never says anything (a firewall that swallows SMTP)."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((self.host, 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._accepted: list[socket.socket] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stopped.is_set():
            try:
                connection, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self._accepted.append(connection)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=2)
        for connection in self._accepted:
            connection.close()
        self._listener.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def refused_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connections are refused)."""
    return free_port()


TEST_USERS = {"alice@example.com": "s3cret"}


@pytest.fixture
def smtp_server_factory(tls_ca: trustme.CA) -> Iterator[Callable[..., SmtpTestServer]]:
    """Start SMTP servers with the test CA's certificates; all stop after the test."""
    started: list[SmtpTestServer] = []

    def start(**kwargs: Any) -> SmtpTestServer:
        kwargs.setdefault("ca", tls_ca)
        server = SmtpTestServer(**kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def smtp_ssl(smtp_server_factory: Callable[..., SmtpTestServer]) -> SmtpTestServer:
    return smtp_server_factory(security="ssl", users=TEST_USERS)


@pytest.fixture
def smtp_starttls(smtp_server_factory: Callable[..., SmtpTestServer]) -> SmtpTestServer:
    return smtp_server_factory(security="starttls", users=TEST_USERS)


@pytest.fixture
def smtp_plain(smtp_server_factory: Callable[..., SmtpTestServer]) -> SmtpTestServer:
    return smtp_server_factory(security="plain", users=TEST_USERS)


@pytest.fixture
def black_hole() -> Iterator[BlackHoleServer]:
    with BlackHoleServer() as server:
        yield server
