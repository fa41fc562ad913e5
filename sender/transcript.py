"""A step-by-step record of one send attempt, shown by Test Mail.

Transports and token providers add steps as they go; nothing secret may be
put in a step's detail (callers pass facts such as hosts, codes, expiry times).
As a second line of defence, a transcript given the configuration's secrets
replaces them, and their base64, with "[hidden]" wherever they appear, even in
what a server said and even cut into pieces (``sender.redaction``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .redaction import HIDDEN, Redactor

__all__ = ["HIDDEN", "Step", "Transcript"]


@dataclass
class Step:
    """One step: what was done, how long it took, how it ended, and what was learned."""

    name: str
    ok: bool = True
    duration_ms: float = 0.0
    details: list[str] = field(default_factory=list)
    error: str = ""
    hint: str = ""
    code: str = ""
    provider_text: str = ""  # the server's own words, for support


@dataclass
class Transcript:
    """An ordered list of steps; ``Transcript.discard()`` is a no-op sink for normal sends."""

    steps: list[Step] = field(default_factory=list)
    enabled: bool = True
    secrets: set[str] = field(default_factory=set, repr=False)
    _redactor: Redactor = field(default_factory=Redactor, repr=False, compare=False)

    def __post_init__(self) -> None:
        given, self.secrets = self.secrets, set()
        self.hide(*given)

    @classmethod
    def discard(cls) -> Transcript:
        return cls(enabled=False)

    def hide(self, *values: str) -> None:
        """Never show these strings (credentials, and what was sent in their place)."""
        if self.enabled:
            new = [value for value in values if value and value not in self.secrets]
            self.secrets.update(new)
            self._redactor.add(*new)

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        """Time a step; an exception marks it failed (with the error's hint) and propagates."""
        current = Step(name=name)
        started = time.perf_counter()
        try:
            yield current
        except Exception as err:
            current.ok = False
            current.error = getattr(err, "message", None) or str(err) or type(err).__name__
            current.hint = getattr(err, "hint", "")
            current.code = getattr(err, "code", "")
            current.provider_text = getattr(err, "provider_text", "")
            raise
        finally:
            current.duration_ms = (time.perf_counter() - started) * 1000
            if self.enabled:
                self._redact(current)
                self.steps.append(current)

    def fail(self, name: str, error: Exception) -> None:
        """Record a failed step for an error raised outside any step."""
        try:
            with self.step(name):
                raise error
        except Exception:  # noqa: S110  (recorded above, nothing more to do)
            pass

    def _redact(self, step: Step) -> None:
        redact = self._redactor.redact
        step.details = [redact(detail) for detail in step.details]
        step.error = redact(step.error)
        step.provider_text = redact(step.provider_text)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)
