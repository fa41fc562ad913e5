"""Django's error mails, at most one per error per interval, through the configured backend.

Anyone can make the console fail the same way many times (30 requests gave 30
mails in under a second). The same error (exception type and where it was
raised, or the log message when there is no exception) is mailed at most once
per interval; the next report says how many were suppressed since when.

The state lives in the ``error_reports`` cache (``CACHES``): a file cache in the
data directory by default, so it holds across the processes of one machine; a
shared cache (Redis, database) makes it hold across machines.
"""

from __future__ import annotations

import hashlib
import logging
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.core.cache import caches
from django.utils.html import escape
from django.utils.log import AdminEmailHandler

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

logger = logging.getLogger(__name__)

CACHE_ALIAS = "error_reports"
DEFAULT_INTERVAL = 600.0
# Suppressed counts wait this long for the next report of the same error.
STATE_SECONDS = 7 * 24 * 3600


def error_signature(record: logging.LogRecord) -> str:
    """What makes two reports "the same error": exception type and place, or the message."""
    if record.exc_info and record.exc_info[0] is not None:
        exc_type, _exc, tb = record.exc_info
        frames = traceback.extract_tb(tb) if tb else []
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else record.pathname
        return f"{exc_type.__module__}.{exc_type.__qualname__} at {where}"
    # The message before its arguments: "Internal Server Error: %s", not one per path.
    return f"{record.name}: {record.msg} at {record.pathname}:{record.lineno}"


class ThrottledAdminEmailHandler(AdminEmailHandler):
    """``AdminEmailHandler`` that mails the same error at most once per ``interval`` seconds.

    Mail goes through ``settings.EMAIL_BACKEND`` (no ``email_backend`` is given), so it
    is queued like every other message, never sent inline by a logging call.
    """

    def __init__(
        self,
        include_html: bool = False,
        email_backend: str | None = None,
        reporter_class: str | None = None,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(include_html, email_backend, reporter_class)
        self.interval = interval
        self.clock = clock
        self._note = ""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            note = self._admit(record)
        except Exception:  # a broken cache must not cost the report itself
            logger.warning("Error report throttle unavailable; mailing anyway.", exc_info=True)
            note = ""
        if note is None:
            return
        self._note = note
        try:
            super().emit(record)
        finally:
            self._note = ""

    def send_mail(
        self, subject: StrOrPromise, message: StrOrPromise, *args: Any, **kwargs: Any
    ) -> None:
        if self._note:
            subject = f"{subject} ({self._note})"
            message = f"{self._note}.\n\n{message}"
            if kwargs.get("html_message"):
                banner = f"<p><strong>{escape(self._note)}.</strong></p>"
                kwargs["html_message"] = kwargs["html_message"].replace(
                    "<body>", "<body>" + banner, 1
                )
        super().send_mail(subject, message, *args, **kwargs)

    def _admit(self, record: logging.LogRecord) -> str | None:
        """None to suppress this report; else a note on earlier suppressed ones ("" if none)."""
        cache = caches[CACHE_ALIAS]
        key = "error-report:" + hashlib.sha256(error_signature(record).encode()).hexdigest()
        now = self.clock()
        state = cache.get(key)
        if state and now - state["sent_at"] < self.interval:
            state["suppressed"] += 1
            state["first_suppressed_at"] = state["first_suppressed_at"] or now
            cache.set(key, state, STATE_SECONDS)
            return None
        cache.set(
            key, {"sent_at": now, "suppressed": 0, "first_suppressed_at": None}, STATE_SECONDS
        )
        if not state or not state["suppressed"]:
            return ""
        since = datetime.fromtimestamp(state["first_suppressed_at"], UTC)
        count = state["suppressed"]
        similar = "similar report" if count == 1 else "similar reports"
        return f"{count} {similar} suppressed since {since:%Y-%m-%d %H:%M:%S} UTC"
