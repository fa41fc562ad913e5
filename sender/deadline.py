"""One time limit for a whole operation (a Test Mail), shared by every step inside it.

Each network call already has its own timeout; without a shared limit a Test Mail
could add them up (DNS, connect, TLS, token, retries...) and keep the admin
waiting for minutes. ``time_limit()`` sets a deadline for the current thread (a
context variable); ``remaining()`` gives each step the smaller of its own timeout
and the time left. Outside ``time_limit()`` (normal sending) it returns the
step's own timeout unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from .errors import MailConnectionError

# A timeout that fires this close to the deadline was the deadline's doing.
EXPIRY_TOLERANCE = 0.1


@dataclass(frozen=True)
class Deadline:
    """When the current operation must end, and the limit it was given (for messages)."""

    ends_at: float  # time.monotonic()
    seconds: float


_current: ContextVar[Deadline | None] = ContextVar("mail_deadline", default=None)


@contextmanager
def time_limit(seconds: float) -> Iterator[Deadline]:
    """Limit everything inside the block to ``seconds`` in total (nested limits: the earlier wins)."""
    outer = _current.get()
    deadline = Deadline(time.monotonic() + seconds, seconds)
    if outer is not None and outer.ends_at < deadline.ends_at:
        deadline = outer
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


def time_left() -> float | None:
    """Seconds left before the deadline, or None when no time limit is set."""
    deadline = _current.get()
    return None if deadline is None else deadline.ends_at - time.monotonic()


def remaining(timeout: float, step: str = "") -> float:
    """The timeout to use for the next operation of ``step``: its own, or less near the deadline.

    Raises the time-limit error when no time is left.
    """
    deadline = _current.get()
    if deadline is None:
        return timeout
    left = deadline.ends_at - time.monotonic()
    if left <= 0:
        raise time_limit_error(step, deadline.seconds)
    return min(timeout, left)


def expired() -> bool:
    """Whether a time limit is set and (about) used up: a timeout now is the limit's."""
    left = time_left()
    return left is not None and left <= EXPIRY_TOLERANCE


def current_limit() -> float | None:
    """The total seconds the current time limit allows, or None."""
    deadline = _current.get()
    return None if deadline is None else deadline.seconds


def time_limit_error(step: str, seconds: float) -> MailConnectionError:
    """The error for a Test Mail that ran out of time, naming the step that was under way."""
    at = f" during “{step}”" if step else ""
    return MailConnectionError(
        f"The test took longer than its time limit of {seconds:g} seconds and was stopped{at}.",
        step=step,
        code="TIMEOUT",
        hint=f"The whole Test Mail is limited to {seconds:g} seconds (MAILCONFIG_TIMEOUT). "
        f"The time ran out{at}: the durations above show which step was slow. A server that "
        "accepts the connection but stops answering is often a firewall or a wrong port; a slow "
        "name lookup points at this server's DNS.",
    )
