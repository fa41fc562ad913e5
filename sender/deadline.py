"""One time limit for a whole operation (a Test Mail, or sending one message), shared
by every step inside it.

Each network call already has its own timeout, but a timeout bounds one socket read,
not an answer: a server that trickles a byte now and then never trips it, and the
steps' timeouts add up (DNS, connect, TLS, token, retries...). ``time_limit()`` sets
a deadline for the current thread (a context variable); ``remaining()`` gives each
step, and each read within a step, the smaller of its own timeout and the time left,
and raises once none is left. Outside ``time_limit()`` it returns the step's own
timeout unchanged.
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
class LimitKind:
    """What a time limit bounds, in the words of its error, and the setting that sets it."""

    subject: str  # what took too long
    scope: str  # what the limit applies to
    setting: str
    advice: str


TEST_MAIL = LimitKind(
    subject="The test",
    scope="The whole Test Mail",
    setting="MAILCONFIG_TIMEOUT",
    advice="the durations above show which step was slow.",
)
MESSAGE = LimitKind(
    subject="Sending the message",
    scope="Sending one message",
    setting="MAILCONFIG_SEND_TIMEOUT",
    advice="run Test Mail to see which step is slow.",
)
WEBHOOK = LimitKind(
    subject="The incident webhook's POST",
    scope="One POST of the incident webhook",
    setting="MAILCONFIG_ALERT_WEBHOOK_TIMEOUT",
    advice="check that the receiver answers promptly (it may queue its own work and answer "
    "202 at once).",
)


@dataclass(frozen=True)
class Deadline:
    """When the current operation must end, the limit it was given and what it bounds."""

    ends_at: float  # time.monotonic()
    seconds: float
    kind: LimitKind = TEST_MAIL


_current: ContextVar[Deadline | None] = ContextVar("mail_deadline", default=None)


@contextmanager
def time_limit(seconds: float, kind: LimitKind = TEST_MAIL) -> Iterator[Deadline]:
    """Limit everything inside the block to ``seconds`` in total (nested limits: the earlier wins)."""
    outer = _current.get()
    deadline = Deadline(time.monotonic() + seconds, seconds, kind)
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
        raise time_limit_error(step, deadline.seconds, deadline.kind)
    return min(timeout, left)


def expired() -> bool:
    """Whether a time limit is set and (about) used up: a timeout now is the limit's."""
    left = time_left()
    return left is not None and left <= EXPIRY_TOLERANCE


def current_limit() -> float | None:
    """The total seconds the current time limit allows, or None."""
    deadline = _current.get()
    return None if deadline is None else deadline.seconds


def limit_sentence() -> str:
    """ "<What> is limited to N seconds (<SETTING>)." for the current time limit, or ""."""
    current = _current.get()
    if current is None:
        return ""
    return _limit_sentence(current.seconds, current.kind)


def _limit_sentence(seconds: float, kind: LimitKind) -> str:
    return f"{kind.scope} is limited to {seconds:g} seconds ({kind.setting})."


def time_limit_error(
    step: str, seconds: float, kind: LimitKind | None = None
) -> MailConnectionError:
    """The error for an operation that ran out of time, naming the step that was under way.

    Without ``kind``, the current time limit's (a Test Mail's when none is set).
    """
    if kind is None:
        current = _current.get()
        kind = current.kind if current is not None else TEST_MAIL
    at = f" during “{step}”" if step else ""
    return MailConnectionError(
        f"{kind.subject} took longer than its time limit of {seconds:g} seconds "
        f"and was stopped{at}.",
        step=step,
        code="TIMEOUT",
        hint=f"{_limit_sentence(seconds, kind)} The time ran out{at}: {kind.advice} A server that accepts the connection but stops "
        "answering, or answers a little at a time, is often a firewall, a wrong port or a "
        "broken server; a slow name lookup points at this server's DNS.",
    )
