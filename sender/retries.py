"""When a failed attempt is tried again, and when the message fails for good.

Temporary failures (the server could not be reached, SMTP 4xx, HTTP 429/5xx, a
token endpoint that is down) are retried on ``MAILCONFIG_RETRY_SCHEDULE``, never
earlier than a ``Retry-After`` said. Everything else (SMTP 5xx, credentials or
permission refused, ``invalid_grant``, a refused recipient) fails at once: trying
again would only repeat the refusal, and the error's hint says what to fix.
"""

from __future__ import annotations

import random
import socket
from datetime import datetime, timedelta

from django.conf import settings

from sender.errors import MailError

# OAuth 2.0 error codes (RFC 6749 5.2 and 4.1.2.1) for an identity platform that is down.
TEMPORARY_OAUTH_ERRORS = frozenset({"temporarily_unavailable", "server_error"})
# Retry delays are stretched by up to this fraction, at random, so that messages that
# failed together (a server restart) do not all come back in the same second.
JITTER = 0.2


def is_transient(error: MailError) -> bool:
    """Whether a later attempt may succeed."""
    if error.transient is not None:
        if error.transient and error.code == "DNS":
            return _dns_failure_is_temporary(error)
        return error.transient
    if error.code in TEMPORARY_OAUTH_ERRORS:
        return True
    # Errors built from an SMTP reply carry its three-digit code (HTTP errors say
    # themselves whether they are transient: see HttpApiTransport).
    return len(error.code) == 3 and error.code.startswith("4") and error.code.isdigit()


def _dns_failure_is_temporary(error: MailError) -> bool:
    # "Temporary failure in name resolution" (EAI_AGAIN) passes; a name that does not
    # exist is a wrong Server Name, and waiting will not create it.
    cause = error.__cause__
    if isinstance(cause, socket.gaierror):
        return cause.errno not in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None))
    return True


def retry_delay(attempts: int, error: MailError) -> float | None:
    """Seconds before the next attempt after ``attempts`` failed ones; None: no more attempts."""
    schedule = settings.MAILCONFIG_RETRY_SCHEDULE
    if attempts > len(schedule):
        return None
    delay = schedule[attempts - 1] * (1 + random.uniform(0, JITTER))
    if error.retry_after is not None:
        delay = max(delay, error.retry_after)
    return delay


def next_attempt_at(now: datetime, attempts: int, error: MailError) -> datetime | None:
    """When to try again, or None when the message has failed for good."""
    if not is_transient(error):
        return None
    delay = retry_delay(attempts, error)
    return None if delay is None else now + timedelta(seconds=delay)
