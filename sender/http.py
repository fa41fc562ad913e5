"""The HTTP session every outbound provider call uses.

``REQUESTS_CA_BUNDLE`` in the environment overrides ``session.verify`` in
requests, so a plain session cannot be made to trust a specific CA bundle.
This subclass forces ``verify`` and ``timeout`` on every request instead, and
is handed to MSAL (``http_client=``) and google-auth (``Request(session)``).

Inside a Test Mail the timeout is also cut to the time the test has left
(``sender.deadline``). The session is shared across threads; the deadline
is a context variable, so each thread sees only its own.

A response's body is read here, piece by piece, checking the time left between
pieces: requests' read timeout applies to each read from the socket, so a server
that trickles its answer a byte at a time would otherwise hold a Test Mail or a
worker far past its limit. A body larger than ``MAX_RESPONSE_BYTES`` is not read
to the end (no provider answer comes near it). What goes wrong while reading it is
raised as requests' errors, which every caller handles: an answer cut short (the
server closed the connection before the length it announced) is ``AnswerCutShort``,
not urllib3's ``ProtocolError`` or ``http.client.IncompleteRead``.

Redirects are never followed: a token endpoint that answers 307 would otherwise
have the client secret, an authorization code or a PKCE verifier posted again to
wherever it points (plain http included). Neither MSAL nor google-auth asks for
redirects to be off, so the session refuses them itself: a redirect is an error
naming where it pointed, and nothing is sent there.
"""

from __future__ import annotations

import http.client
import os
import threading
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3.exceptions
from django.conf import settings

from .deadline import expired, remaining
from .errors import MailError, ProviderError

# Enough of a redirect's target to recognise it, not a page of whatever a server sent.
MAX_SHOWN_URL = 200


class RedirectRefused(requests.RequestException):
    """A provider endpoint answered with a redirect, which is not followed."""

    def __init__(self, response: requests.Response) -> None:
        self.url = response.url
        self.status = response.status_code
        self.location = urljoin(response.url, response.headers.get("Location", ""))
        super().__init__(
            f"{_shown(self.url)} answered {self.status} redirecting to {_shown(self.location)}",
            response=response,
        )

    def mail_error(self, step: str) -> MailError:
        """The error an admin sees: where the request went, where it was sent on to."""
        host = urlsplit(self.url).hostname or self.url
        return ProviderError(
            f"{host} answered with a redirect ({self.status}) to {_shown(self.location)}, "
            "which was not followed: nothing was sent there.",
            step=step,
            code="REDIRECT",
            provider_text=f"{self.status} Location: {_shown(self.location)}",
            hint="Identity platforms and mail APIs do not redirect these requests. Check the "
            "endpoints configured for this provider (MAILCONFIG_AZURE_ENVIRONMENTS, "
            "MAILCONFIG_GOOGLE) and any proxy or TLS-inspecting device between this server "
            "and the provider.",
        )


def _shown(url: str) -> str:
    # Without its query: a server that was sent a secret could echo it back there.
    parts = urlsplit(url)
    shown = parts._replace(query="", fragment="").geturl() + ("?…" if parts.query else "")
    return shown if len(shown) <= MAX_SHOWN_URL else shown[:MAX_SHOWN_URL] + "…"


def refuse_redirects(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """A requests response hook: a redirect raises ``RedirectRefused`` before it is followed.

    Hooks run before requests follows a redirect, so this holds for sessions we do not
    create ourselves (google-auth-oauthlib's ``OAuth2Session``) as well.
    """
    if response.is_redirect:
        response.close()
        raise RedirectRefused(response)


class VerifiedSession(requests.Session):
    """A keep-alive session that always verifies TLS against our CA file, times out, and
    never follows a redirect."""

    def __init__(self, ca_file: str | None = None, timeout: float | None = None) -> None:
        super().__init__()
        self.ca_file = ca_file if ca_file is not None else settings.MAILCONFIG_CA_FILE
        self.timeout = timeout if timeout is not None else settings.MAILCONFIG_TIMEOUT
        self.max_redirects = 0
        self.hooks["response"].append(refuse_redirects)

    # Every option is passed by keyword (requests' own post(), get()... do), so **kwargs
    # stands for Session.request's long list of named parameters.
    def request(  # type: ignore[override]
        self, method: str | bytes, url: str | bytes, **kwargs: Any
    ) -> requests.Response:
        kwargs["verify"] = self.ca_file or True
        kwargs["allow_redirects"] = False
        try:
            kwargs["timeout"] = remaining(self.timeout)
        except MailError as err:
            # Raised as the timeout requests itself would raise, so MSAL, google-auth and
            # our callers handle it as one (and name the step they were at).
            raise requests.Timeout(err.message) from err
        if kwargs.pop("stream", False):
            return super().request(method, url, stream=True, **kwargs)
        response = super().request(method, url, stream=True, **kwargs)
        _read_body(response)
        return response


class AnswerCutShort(requests.ConnectionError):
    """The server closed the connection before its whole answer arrived."""

    def __init__(self, url: str, received: int) -> None:
        self.url = url
        self.received = received
        super().__init__(
            f"The answer from {_shown(url)} was cut short: the connection closed after "
            f"{received} bytes, before the whole answer arrived."
        )


# Provider answers are tokens, small JSON documents and error bodies: kilobytes.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_PIECE = 64 * 1024


def _read_body(response: requests.Response) -> None:
    """Read the whole body into ``response.content`` within the time limit."""
    pieces: list[bytes] = []
    size = 0
    try:
        while piece := response.raw.read1(_PIECE, decode_content=True):
            size += len(piece)
            if size > MAX_RESPONSE_BYTES:
                raise requests.ConnectionError(
                    f"The server's answer to {_shown(response.url)} is larger than "
                    f"{MAX_RESPONSE_BYTES // (1024 * 1024)} MB; it was not read to the end."
                )
            pieces.append(piece)
            if expired():
                raise requests.Timeout(
                    f"The answer from {_shown(response.url)} was still arriving when the "
                    "time limit ran out."
                )
    except (urllib3.exceptions.ProtocolError, http.client.IncompleteRead) as err:
        response.close()
        raise AnswerCutShort(response.url, size) from err
    except urllib3.exceptions.ReadTimeoutError as err:
        response.close()
        raise requests.exceptions.ReadTimeout(
            f"The answer from {_shown(response.url)} stopped arriving for longer than the "
            "read timeout."
        ) from err
    except urllib3.exceptions.HTTPError as err:
        response.close()
        raise requests.ConnectionError(
            f"Reading the answer from {_shown(response.url)} failed: {type(err).__name__}."
        ) from err
    except BaseException:
        response.close()  # the connection is not reused with half an answer in it
        raise
    response._content = b"".join(pieces)
    response._content_consumed = True  # type: ignore[attr-defined]  # requests' own flag


def requests_ca_file(ca_file: str | None) -> str:
    """The CA bundle requests verifies against when given ``verify=ca_file or True``.

    With ``True`` requests takes ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` from the
    environment, else certifi's bundle: a check made beside requests must trust the same.
    """
    return (
        ca_file
        or os.environ.get("REQUESTS_CA_BUNDLE")
        or os.environ.get("CURL_CA_BUNDLE")
        or requests.utils.DEFAULT_CA_BUNDLE_PATH
    )


_sessions: dict[tuple[str | None, float], VerifiedSession] = {}
_sessions_lock = threading.Lock()


def shared_session(ca_file: str | None = None, timeout: float | None = None) -> VerifiedSession:
    """One keep-alive session per (CA file, timeout), shared by every sender in the process.

    Django builds a new backend for each ``send_mail()``; sharing the session keeps
    the TCP and TLS connections to the token endpoint and the API open between them.
    """
    session = VerifiedSession(ca_file, timeout)
    key = (session.ca_file, session.timeout)
    with _sessions_lock:
        return _sessions.setdefault(key, session)
