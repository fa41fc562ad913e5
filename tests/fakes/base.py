"""A small HTTPS server for provider fakes: routes, JSON, JWTs, counters, injected failures.

Each fake is a real HTTP/1.1 server with keep-alive on 127.0.0.1 and a trustme
certificate, so MSAL, google-auth and requests run unmodified against it.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import json
import re
import secrets
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urlsplit

import trustme

from tests.servers.http_server import LocalHTTPServer


@dataclass
class SentMail:
    """A message a fake API accepted: the mailbox it was sent as, and its MIME bytes."""

    user: str
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """A JWT whose signature nobody checks (access and ID tokens the clients only decode)."""
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "fake"}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}.{b64url(secrets.token_bytes(32))}"


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Header, claims, signing input and signature of a JWT (not verified here)."""
    header, payload, signature = token.split(".")
    return (
        json.loads(b64url_decode(header)),
        json.loads(b64url_decode(payload)),
        f"{header}.{payload}".encode(),
        b64url_decode(signature),
    )


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of a verifier."""
    return b64url(hashlib.sha256(verifier.encode()).digest())


@dataclass
class Request:
    """What a route sees of one HTTP request."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return {key: values[0] for key, values in parse_qs(self.body.decode()).items()}

    @property
    def json(self) -> Any:
        return json.loads(self.body or b"null")

    @property
    def bearer(self) -> str:
        value = self.headers.get("authorization", "")
        return value[7:] if value.lower().startswith("bearer ") else ""


@dataclass
class Response:
    """What a route answers."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return cls(
            status,
            json.dumps(data).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )

    @classmethod
    def redirect(cls, url: str, params: dict[str, str]) -> Response:
        separator = "&" if "?" in url else "?"
        return cls(302, b"", {"Location": f"{url}{separator}{urlencode(params)}"})

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode(), {"Content-Type": "text/html; charset=utf-8"})


Route = Callable[[Request, re.Match[str]], Response]


@dataclass
class Injected:
    response: Response
    count: int


class FakeServer:
    """Base of the provider fakes: subclasses register routes in ``routes()``."""

    def __init__(self, ca: trustme.CA) -> None:
        self.requests: Counter[str] = Counter()
        self.tokens_issued: Counter[str] = Counter()
        self.connections = 0
        self.delays: dict[str, float] = {}  # endpoint -> seconds, to widen race windows
        # endpoint -> seconds between the bytes of its response body: a slow server that
        # keeps every read within the client's read timeout.
        self.trickle: dict[str, float] = {}
        # endpoints whose answer stops halfway: the whole length announced, half the body
        # sent, the connection closed (a proxy or a server restarting mid-answer).
        self.cut_short: set[str] = set()
        # endpoint -> called with the request before it is answered, to make something
        # happen in the middle of a flow (another admin saving the settings, say).
        self.before: dict[str, Callable[[Request], None]] = {}
        self._injected: dict[str, list[Injected]] = {}
        self._lock = threading.RLock()
        self._routes: list[tuple[str, re.Pattern[str], str, Route]] = [
            (method, re.compile(pattern + "$"), name, route)
            for method, pattern, name, route in self.routes()
        ]
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like the real endpoints
            # Headers and body go out in two writes: without TCP_NODELAY, Nagle and
            # delayed ACKs add 40 ms to every response.
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                with fake._lock:
                    fake.connections += 1

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_POST(self) -> None:
                self._dispatch("POST")

            def _dispatch(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                request = Request(
                    method=method,
                    path=parts.path,
                    query={k: v[0] for k, v in parse_qs(parts.query).items()},
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                response, endpoint = fake._handle(request)
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                if endpoint in fake.cut_short:
                    self.wfile.write(response.body[: len(response.body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                interval = fake.trickle.get(endpoint)
                if not interval:
                    self.wfile.write(response.body)
                    return
                for index in range(len(response.body)):
                    self.wfile.write(response.body[index : index + 1])
                    self.wfile.flush()
                    time.sleep(interval)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: tests read counters, not logs

        self._httpd = LocalHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self.port = self._httpd.server_address[1]
        self.base_url = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def routes(self) -> list[tuple[str, str, str, Route]]:
        """(method, path regex, counter name, handler) rows."""
        raise NotImplementedError

    def _handle(self, request: Request) -> tuple[Response, str]:
        """The response to ``request`` and the endpoint (counter name) that answered it."""
        for method, pattern, name, route in self._routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                with self._lock:
                    self.requests[name] += 1
                    injected = self._take_injected(name)
                hook = self.before.get(name)
                if hook is not None:
                    try:
                        hook(request)
                    except Exception as err:  # a bug in the test's hook: make it visible
                        crashed = {"error": "hook_crashed", "detail": repr(err)}
                        return Response.json(crashed, 500), name
                if injected is not None:
                    return injected, name
                if self.delays.get(name):
                    time.sleep(self.delays[name])
                try:
                    return route(request, match), name
                except Exception as err:  # a bug in the fake: make it visible
                    return Response.json({"error": "fake_crashed", "detail": repr(err)}, 500), name
        return Response.json({"error": "not_found", "path": request.path}, 404), ""

    def fail_next(
        self,
        endpoint: str,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        count: int = 1,
    ) -> None:
        """Answer the next ``count`` requests to ``endpoint`` with this response."""
        response = Response.json(body if body is not None else {}, status, headers)
        with self._lock:
            self._injected.setdefault(endpoint, []).append(Injected(response, count))

    def _take_injected(self, name: str) -> Response | None:
        queue = self._injected.get(name)
        if not queue:
            return None
        head = queue[0]
        head.count -= 1
        if head.count <= 0:
            queue.pop(0)
        return head.response

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.tokens_issued.clear()
            self.connections = 0
            self.delays.clear()
            self.trickle.clear()
            self.cut_short.clear()
            self.before.clear()
            self._injected.clear()

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ProviderFake(FakeServer):
    """What both providers' fakes keep: consents given, refresh tokens, mail sent."""

    def reset(self) -> None:
        super().reset()
        self.codes: dict[str, dict[str, Any]] = {}  # authorization code -> its grant
        self.refresh_tokens: dict[str, dict[str, Any]] = {}
        self.sent: list[SentMail] = []
        self.last_authorize_params: dict[str, str] = {}
        self.next_consent_user = ""  # who "signs in" at the next authorize request
        self.consent_error: tuple[str, str] | None = None  # (error, description) to answer
