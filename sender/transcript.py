"""A step-by-step record of one send attempt, shown by Test Mail.

Transports and token providers add steps as they go; nothing secret may be
put in a step's detail (callers pass facts such as hosts, codes, expiry times).
As a second line of defence, a transcript given the configuration's secrets
replaces them with "[hidden]" wherever they appear, even in what a server said.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

HIDDEN = "[hidden]"


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

    def __post_init__(self) -> None:
        given, self.secrets = self.secrets, set()
        self.hide(*given)

    @classmethod
    def discard(cls) -> Transcript:
        return cls(enabled=False)

    def hide(self, *values: str) -> None:
        """Never show these strings (credentials, and what was sent in their place)."""
        if self.enabled:
            for value in values:
                if value:
                    self.secrets.add(value)
                    # Servers' replies are shown with runs of white space collapsed.
                    self.secrets.add(" ".join(value.split()))
            self.secrets.discard("")

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
        # Longest first, so a secret that contains another is hidden whole.
        for secret in sorted(self.secrets, key=len, reverse=True):
            step.details = [detail.replace(secret, HIDDEN) for detail in step.details]
            step.error = step.error.replace(secret, HIDDEN)
            step.provider_text = step.provider_text.replace(secret, HIDDEN)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)
