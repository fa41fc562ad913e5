"""The HTTP session every outbound provider call uses.

``REQUESTS_CA_BUNDLE`` in the environment overrides ``session.verify`` in
requests, so a plain session cannot be made to trust a specific CA bundle.
This subclass forces ``verify`` and ``timeout`` on every request instead, and
is handed to MSAL (``http_client=``) and google-auth (``Request(session)``).

Inside a Test Mail the timeout is also cut to the time the test has left
(``sender.deadline``). The session is shared across threads; the deadline
is a context variable, so each thread sees only its own.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import requests
from django.conf import settings

from .deadline import remaining
from .errors import MailError


class VerifiedSession(requests.Session):
    """A keep-alive session that always verifies TLS against our CA file and times out."""

    def __init__(self, ca_file: str | None = None, timeout: float | None = None) -> None:
        super().__init__()
        self.ca_file = ca_file if ca_file is not None else settings.MAILCONFIG_CA_FILE
        self.timeout = timeout if timeout is not None else settings.MAILCONFIG_TIMEOUT

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["verify"] = self.ca_file or True
        try:
            kwargs["timeout"] = remaining(self.timeout)
        except MailError as err:
            # Raised as the timeout requests itself would raise, so MSAL, google-auth and
            # our callers handle it as one (and name the step they were at).
            raise requests.Timeout(err.message) from err
        return super().request(method, url, *args, **kwargs)


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
