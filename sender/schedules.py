"""Periodic tasks of the apps above the sender, kept going by the workers.

Django's tasks framework has no schedule of its own: a periodic task queues its next
run itself, and the outbox's recovery sweep (``recover_outbox``, every minute while a
worker runs) queues it again when that chain broke (a worker killed mid-run). The
sender cannot import the apps that sit above it, so they register here what to call:
``keep`` at every sweep (make sure the next run is queued, cheaply) and
``at_worker_start`` once when ``manage.py db_worker`` starts. ``settings_app``
registers the expiry radar's daily alert check in its ``AppConfig.ready()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from django.utils import timezone

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule:
    """What the workers call for one periodic task."""

    keep: Callable[[], object]
    at_worker_start: Callable[[], object] | None = None


# By name, so that registering again (ready() run twice) replaces instead of doubling.
_schedules: dict[str, Schedule] = {}


def register_schedule(
    name: str,
    keep: Callable[[], object],
    *,
    at_worker_start: Callable[[], object] | None = None,
) -> None:
    """Have the workers call ``keep`` at every recovery sweep and ``at_worker_start`` when
    one starts."""
    _schedules[name] = Schedule(keep, at_worker_start)


def keep_schedules() -> None:
    """Called by the recovery sweep: each registered chain queues its next run if needed."""
    for name, schedule in list(_schedules.items()):
        _call(name, schedule.keep)


def start_schedules() -> None:
    """Called once when a worker starts."""
    for name, schedule in list(_schedules.items()):
        if schedule.at_worker_start is not None:
            _call(name, schedule.at_worker_start)


def next_daily(at: time, after: datetime) -> datetime:
    """The first ``at`` on the console's clock (``TIME_ZONE``) strictly after ``after``,
    in UTC."""
    local = timezone.localtime(after)
    slot = datetime.combine(local.date(), at, tzinfo=local.tzinfo)
    if slot <= after:
        slot = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=local.tzinfo)
    return slot.astimezone(UTC)


def _call(name: str, function: Callable[[], object]) -> None:
    # One app's broken schedule must not stop the outbox's sweep, nor the other schedules.
    try:
        function()
    except Exception:
        logger.exception("The periodic task %s could not be scheduled", name)
