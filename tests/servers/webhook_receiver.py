"""A local HTTP server that receives the incident webhook and verifies it as docs/operations.md says."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from tests.servers.http_server import LocalHTTPServer

SECRET = "webhook-shared-secret"


@dataclass
class ReceivedPost:
    """One POST as the receiver saw it, and whether its signature checked out."""

    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


def verify(secret: str, headers: dict[str, str], body: bytes, max_age: float = 300) -> bool:
    """What a receiver does (docs/operations.md, "Incident webhook"): recompute the HMAC over
    ``<timestamp>.<raw body>``, compare in constant time, refuse stale timestamps."""
    timestamp = headers.get("X-Mailconfig-Timestamp", "")
    signature = headers.get("X-Mailconfig-Signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > max_age:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(signature, "sha256=" + expected.hexdigest())


@dataclass
class WebhookReceiver:
    """Answers each POST with the next of ``statuses`` (then 200), after ``delays`` seconds."""

    secret: str = SECRET
    statuses: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    received: list[ReceivedPost] = field(default_factory=list)
    redirect_to: str = ""  # the Location of a 3xx answer
    answer: bytes = b""  # the body of every answer
    trickle: float = 0.0  # seconds between the answer's bytes (each within any read timeout)
    # Announce twice the answer's length and close after it: an answer cut short.
    cut_short: bool = False

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = dict(self.headers.items())
                with receiver._lock:
                    receiver.received.append(
                        ReceivedPost(headers, body, verify(receiver.secret, headers, body))
                    )
                    delay = receiver.delays.pop(0) if receiver.delays else 0.0
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                if delay:
                    time.sleep(delay)  # the server is slow; the sender's timeout is what is tested
                try:
                    self.send_response(status)
                    if 300 <= status < 400 and receiver.redirect_to:
                        self.send_header("Location", receiver.redirect_to)
                    announced = len(receiver.answer) * (2 if receiver.cut_short else 1)
                    self.send_header("Content-Length", str(announced))
                    self.end_headers()
                    for index in range(len(receiver.answer)):
                        self.wfile.write(receiver.answer[index : index + 1])
                        self.wfile.flush()
                        time.sleep(receiver.trickle)
                except OSError:
                    pass  # the sender gave up waiting and closed the connection

            def log_message(self, *args: Any) -> None:
                pass

        self._lock = threading.Lock()
        self._server = LocalHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/mail"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def events(self) -> list[str]:
        return [post.json["event"] for post in self.received]


@pytest.fixture
def webhook(settings) -> Iterator[WebhookReceiver]:
    """A running receiver, configured as MAILCONFIG_ALERT_WEBHOOK_URL with its secret."""
    receiver = WebhookReceiver()
    settings.MAILCONFIG_ALERT_WEBHOOK_URL = receiver.url
    settings.MAILCONFIG_ALERT_WEBHOOK_SECRET = receiver.secret
    settings.MAILCONFIG_ALERT_WEBHOOK_RETRY_SCHEDULE = [30.0, 120.0]
    yield receiver
    receiver.stop()
