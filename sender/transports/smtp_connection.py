"""``smtplib.SMTP`` connections that read the server's replies themselves, within bounds.

smtplib reads a reply line by line from a buffered file: each read has the socket
timeout, but a reply has no limit at all, so a server that trickles a byte a second,
or sends ``220-still here`` forever, holds the sender as long as it likes. Here every
``recv`` is given only the time left (``sender.deadline``), the time limit is checked
between reads, and a reply line and a whole reply have a maximum size. Everything
smtplib reads (greeting, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA, QUIT) comes
through ``getreply()``.

The name given in EHLO is decided once per process (``ehlo_name()``): left to
itself, smtplib calls ``socket.getfqdn()`` for every connection, a DNS lookup
that no timeout bounds and that takes seconds where reverse DNS is broken.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.mail.utils import DNS_NAME

from sender import deadline
from sender.errors import ProviderError
from sender.network import AddressInfo, connect_first

# smtplib's own limit for a line; RFC 5321 allows 512 octets, servers send more.
MAX_REPLY_LINE = 8192
# EHLO answers, the longest replies in practice, take a few hundred bytes.
MAX_REPLY = 64 * 1024
RECV_SIZE = 4096
NOT_A_MAIL_SERVER_HINT = (
    "Check the Server Name and Port Number: this does not behave like a mail server."
)


def ehlo_name() -> str:
    """The name this host gives in EHLO: ``MAILCONFIG_EHLO_NAME``, else its fully qualified
    name, looked up once per process (Django's ``DNS_NAME``, shared with its SMTP backend)."""
    return settings.MAILCONFIG_EHLO_NAME or DNS_NAME.get_fqdn()


class BoundedReplies(smtplib.SMTP):
    """Reads replies with the time limit checked before each ``recv`` and sizes capped.

    ``step`` names what the transport is doing (for errors) and ``step_timeout`` is
    the longest a single read may wait; the transport sets both as it goes.
    """

    step = "Connect"
    step_timeout: float = 15.0
    _unread = b""  # received but not yet part of a reply (a pipelining server, a short line)

    def getreply(self) -> tuple[int, bytes]:
        lines: list[bytes] = []
        size = 0
        while True:
            line = self._read_line()
            size += len(line)
            if size > MAX_REPLY:
                self._give_up()
                raise ProviderError(
                    f"The server's reply was longer than {MAX_REPLY // 1024} KB and was cut off.",
                    step=self.step,
                    code="REPLY-TOO-LONG",
                    hint=NOT_A_MAIL_SERVER_HINT,
                )
            lines.append(line[4:].strip(b" \t\r\n"))
            try:
                code = int(line[:3])
            except ValueError:
                return -1, b"\n".join(lines)  # as smtplib: no continuation after a broken line
            if line[3:4] != b"-":
                return code, b"\n".join(lines)

    def _read_line(self) -> bytes:
        """One line (with its line end), reading as little as the socket gives at a time."""
        while True:
            end = self._unread.find(b"\n")
            if end != -1:
                line, self._unread = self._unread[: end + 1], self._unread[end + 1 :]
                if len(line) > MAX_REPLY_LINE:
                    break
                return line
            if len(self._unread) > MAX_REPLY_LINE:
                break
            self._receive()
        self._give_up()
        raise ProviderError(
            f"The server sent a reply line longer than {MAX_REPLY_LINE} bytes.",
            step=self.step,
            code="LINE-TOO-LONG",
            hint=NOT_A_MAIL_SERVER_HINT,
        )

    def _receive(self) -> None:
        if self.sock is None:
            raise smtplib.SMTPServerDisconnected("please run connect() first")
        try:
            # Raises the time-limit error once no time is left: checked between reads.
            self.use_timeout(deadline.remaining(self.step_timeout, self.step))
            chunk = self.sock.recv(RECV_SIZE)
        except TimeoutError as err:
            self._give_up()
            limit = deadline.current_limit()
            if limit is not None and deadline.expired():
                raise deadline.time_limit_error(self.step, limit) from err
            raise smtplib.SMTPServerDisconnected(f"Connection unexpectedly closed: {err}") from err
        except OSError as err:
            self._give_up()
            # smtplib's words, which the transport reads ("timed out").
            raise smtplib.SMTPServerDisconnected(f"Connection unexpectedly closed: {err}") from err
        except BaseException:
            self._give_up()  # the rest of this reply would be read as the next one's
            raise
        if not chunk:
            self._give_up()
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        self._unread += chunk

    def use_timeout(self, timeout: float) -> None:
        """Set the socket's timeout (for sending too), only when it changes."""
        if self.sock is not None and timeout != self.sock.gettimeout():
            self.sock.settimeout(timeout)

    def _give_up(self) -> None:
        # A reply cut short leaves the connection out of step: nothing more can be read.
        self.close()

    def starttls(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        reply = super().starttls(*args, **kwargs)
        # Anything sent in plain text after the go-ahead is not trusted (as smtplib does).
        self._unread = b""
        return reply

    def close(self) -> None:
        self._unread = b""
        super().close()


class ResolvedSMTP(BoundedReplies):
    """``smtplib.SMTP`` connecting to addresses resolved beforehand (within the time limit)."""

    def __init__(
        self,
        host: str,
        port: int,
        addresses: list[AddressInfo],
        timeout: Callable[[], float],
        step_timeout: float,
    ) -> None:
        self.addresses, self.connect_timeout = addresses, timeout
        self.step_timeout = step_timeout
        super().__init__(host, port, local_hostname=ehlo_name(), timeout=timeout())

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return connect_first(self.addresses, self.connect_timeout)


class ResolvedSMTP_SSL(BoundedReplies, smtplib.SMTP_SSL):
    """``smtplib.SMTP_SSL`` on resolved addresses; the certificate is checked for the
    configured host name, not the address."""

    def __init__(
        self,
        host: str,
        port: int,
        addresses: list[AddressInfo],
        timeout: Callable[[], float],
        step_timeout: float,
        context: ssl.SSLContext,
    ) -> None:
        self.addresses, self.connect_timeout = addresses, timeout
        self.step_timeout = step_timeout
        self.certificate_host = host  # the name the certificate must carry
        super().__init__(host, port, local_hostname=ehlo_name(), timeout=timeout(), context=context)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = connect_first(self.addresses, self.connect_timeout)
        try:
            return self.context.wrap_socket(sock, server_hostname=self.certificate_host)
        except BaseException:
            sock.close()
            raise
