"""A plain-text SMTP server on raw sockets, for what aiosmtpd will not do: answer a byte
at a time, answer forever, answer with an oversized reply, or echo what a client sent
at AUTH split over continuation lines.

It speaks just enough SMTP for ``SmtpTransport``: greeting, EHLO (offering AUTH PLAIN,
LOGIN and XOAUTH2), AUTH, MAIL, RCPT, DATA, RSET, QUIT. Each connection ends by itself
after ``lifetime`` seconds, so a test never leaves it trickling.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Self

import pytest

# The reply each stage gives when a test does not script it.
NORMAL_REPLIES = {
    "greeting": b"220 scripted.test ESMTP\r\n",
    "EHLO": b"250-scripted.test\r\n250-AUTH PLAIN LOGIN XOAUTH2\r\n250 SIZE 10000000\r\n",
    "AUTH": b"235 2.7.0 Authentication successful\r\n",
    "MAIL": b"250 2.1.0 OK\r\n",
    "RCPT": b"250 2.1.5 OK\r\n",
    "DATA": b"354 End data with <CR><LF>.<CR><LF>\r\n",
    "DATA-END": b"250 2.0.0 OK queued as SCRIPTED\r\n",
    "RSET": b"250 2.0.0 OK\r\n",
    "QUIT": b"221 2.0.0 Bye\r\n",
}
LOGIN_PASSWORD_CHALLENGE = b"334 UGFzc3dvcmQ6\r\n"  # "Password:"


class _Finished(Exception):
    """The connection is over: the client left, the test stopped, or the lifetime ran out."""


class ScriptedSmtpServer:
    """An SMTP server on 127.0.0.1 whose replies a test scripts per stage.

    - ``replies[stage]``: the bytes to answer instead of the normal reply;
    - ``trickle[stage]``: seconds to wait before each byte of that reply;
    - ``delays[stage]``: seconds to wait before that reply (``math.inf``: never answer,
      until the client goes away or the connection's lifetime ends);
    - ``forever``: stages that answer ``NNN-still here`` continuation lines until the
      client goes away (trickled too if the stage is in ``trickle``);
    - ``only_first_connection``: the script applies to the first connection only;
    - ``auth_reply``: called with the client's AUTH lines (the command and any answers
      to challenges), returns the reply to them (an echo of the credentials, say).
    """

    security = "plain"  # no TLS: nothing here needs it

    def __init__(self, *, lifetime: float = 8.0) -> None:
        self.host = "127.0.0.1"
        self.lifetime = lifetime
        self.replies: dict[str, bytes] = {}
        self.trickle: dict[str, float] = {}
        self.delays: dict[str, float] = {}
        self.forever: set[str] = set()
        self.only_first_connection = False
        self.auth_reply: Callable[[list[bytes]], bytes] | None = None
        self.auth_lines: list[bytes] = []
        self.messages = 0
        self.connections = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((self.host, 0))
        self._listener.listen(8)
        self.port = self._listener.getsockname()[1]
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    # Lifecycle --------------------------------------------------------------
    def start(self) -> Self:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopped.set()
        for thread in list(self._threads):
            thread.join(timeout=2)
        self._listener.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Serving ----------------------------------------------------------------
    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stopped.is_set():
            try:
                connection, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.connections += 1
                scripted = self.connections == 1 or not self.only_first_connection
            thread = threading.Thread(target=self._serve, args=(connection, scripted), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, connection: socket.socket, scripted: bool) -> None:
        session = _Session(self, connection, scripted, time.monotonic() + self.lifetime)
        try:
            session.run()
        except (_Finished, OSError):
            pass
        finally:
            connection.close()


class _Session:
    """One client connection."""

    def __init__(
        self, server: ScriptedSmtpServer, connection: socket.socket, scripted: bool, ends_at: float
    ) -> None:
        self.server, self.connection, self.scripted, self.ends_at = (
            server,
            connection,
            scripted,
            ends_at,
        )
        self.unread = b""
        connection.settimeout(0.1)

    def run(self) -> None:
        self.reply("greeting")
        while True:
            line = self.read_line()
            verb = line.split(b" ", 1)[0].strip().upper()
            if verb in (b"EHLO", b"HELO"):
                self.reply("EHLO")
            elif verb == b"AUTH":
                self.authenticate(line)
            elif verb in (b"MAIL", b"RCPT", b"RSET"):
                self.reply(verb.decode())
            elif verb == b"DATA":
                self.reply("DATA")
                while self.read_line() != b".\r\n":
                    pass
                with self.server._lock:
                    self.server.messages += 1
                self.reply("DATA-END")
            elif verb == b"QUIT":
                self.reply("QUIT")
                return
            else:
                self.send(b"502 5.5.2 Command not recognized\r\n")

    def authenticate(self, line: bytes) -> None:
        lines = [line.rstrip(b"\r\n")]
        if line.split()[1:2] == [b"LOGIN"]:
            self.send(LOGIN_PASSWORD_CHALLENGE)
            lines.append(self.read_line().rstrip(b"\r\n"))
        self.server.auth_lines.extend(lines)
        if self.server.auth_reply is not None:
            self.send(self.server.auth_reply(lines))
        else:
            self.reply("AUTH")

    # Talking ----------------------------------------------------------------
    def reply(self, stage: str) -> None:
        server = self.server
        scripted = self.scripted
        text = server.replies.get(stage, NORMAL_REPLIES[stage]) if scripted else None
        interval = server.trickle.get(stage, 0.0) if scripted else 0.0
        if scripted and stage in server.delays:
            self.wait(server.delays[stage])
        if scripted and stage in server.forever:
            code = (text or NORMAL_REPLIES[stage])[:3]
            while True:
                self.send(code + b"-still here\r\n", interval)
        self.send(text or NORMAL_REPLIES[stage], interval)

    def send(self, data: bytes, interval: float = 0.0) -> None:
        if not interval:
            self.check_time()
            self.connection.sendall(data)
            return
        for index in range(len(data)):
            time.sleep(interval)
            self.check_time()
            self.connection.sendall(data[index : index + 1])

    def wait(self, seconds: float) -> None:
        ends_at = time.monotonic() + seconds
        while time.monotonic() < ends_at:
            self.check_time()
            time.sleep(0.05)

    def read_line(self) -> bytes:
        while b"\n" not in self.unread:
            self.check_time()
            try:
                chunk = self.connection.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                raise _Finished
            self.unread += chunk
        line, _, self.unread = self.unread.partition(b"\n")
        return line + b"\n"

    def check_time(self) -> None:
        if self.server._stopped.is_set() or time.monotonic() > self.ends_at:
            raise _Finished


@pytest.fixture
def scripted_smtp() -> Iterator[ScriptedSmtpServer]:
    """A scripted plain-text SMTP server, stopped after the test."""
    with ScriptedSmtpServer() as server:
        yield server
