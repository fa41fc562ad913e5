"""When a failed attempt is tried again, and when the message fails for good.

Temporary failures (the server could not be reached, SMTP 4xx, HTTP 429/5xx, a
token endpoint that is down) are retried on ``MAILCONFIG_RETRY_SCHEDULE``, never
earlier than a ``Retry-After`` said. Everything else (SMTP 5xx, credentials or
permission refused, ``invalid_grant``, a refused recipient) fails at once: trying
again would only repeat the refusal, and the error's hint says what to fix.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.conf import settings

from sender.errors import MailError

# Retry delays are stretched by up to this fraction, at random, so that messages that
# failed together (a server restart) do not all come back in the same second.
JITTER = 0.2


def is_transient(error: MailError) -> bool:
    """Whether a later attempt may succeed: the error's own verdict, fixed when it was
    built (``sender/errors.py``)."""
    return error.transient


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
