"""Recovery: waking a worker for messages no wake-up would send, and pruning task records.

A message can be left without a wake-up: its worker died mid-send (the row stays
Sending until its lease runs out), or the process that queued it stopped between its
commit and the wake-up's enqueue. ``recover`` runs when a worker starts and in the
``recover_outbox`` sweep every ``sweep_interval()`` seconds; it wakes a worker when
such messages exist and no wake-up is waiting.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from sender.models import OutboxMessage, Status

from . import task_engine, wakeups

logger = logging.getLogger(__name__)

# Rows waiting this long past their time without a wake-up get one from the sweep.
OVERDUE_GRACE = timedelta(seconds=60)
TASK_RESULTS_KEPT = timedelta(days=1)


def sweep_interval() -> float:
    """Seconds between two recovery sweeps: often enough to honour the lease."""
    return max(1.0, min(60.0, settings.MAILCONFIG_SEND_LEASE / 2))


def recover(now: datetime | None = None, limit: int = 1000) -> int:
    """Wake a worker for the messages no wake-up will bring: Sending past their lease (the
    worker died), and Queued or Retrying rows overdue while no wake-up waits. Returns how
    many messages (at most ``limit``) it woke a worker for."""
    from .tasks import drain_outbox

    now = now or timezone.now()
    stalled = Q(status=Status.SENDING, lease_until__lt=now)
    overdue = Q(status__in=[Status.QUEUED, Status.RETRYING]) & (
        Q(next_attempt_at__lt=now - OVERDUE_GRACE)
        | Q(next_attempt_at__isnull=True, queued_at__lt=now - OVERDUE_GRACE)
    )
    waiting = OutboxMessage.objects.filter(stalled | overdue).values_list("pk", flat=True)
    count = len(waiting[:limit])
    if not count or task_engine.has_ready_run(drain_outbox):
        return 0  # nothing lost, or a backlog that a waiting wake-up will drain
    wakeups.wake()
    logger.warning("Woke a worker for %d message(s) that no wake-up would have sent.", count)
    return count


def ensure_sweep_scheduled(now: datetime | None = None) -> None:
    """Make sure a recovery sweep is queued (one chain; a second one dies out by itself)."""
    from .tasks import recover_outbox

    now = now or timezone.now()
    if not task_engine.has_queued_run(recover_outbox):
        run_after = now + timedelta(seconds=sweep_interval())
        recover_outbox.using(run_after=run_after).enqueue()


def prune_task_results(now: datetime | None = None) -> int:
    """Delete finished task records after a day: every task here (wake-ups, the sweep,
    health checks, expiry checks) keeps its outcome in its own rows, so the engine's
    record of a finished task is only how the work reached a worker."""
    return task_engine.prune_finished((now or timezone.now()) - TASK_RESULTS_KEPT)


def warn_if_lease_short() -> bool:
    """Log a warning when the lease is shorter than the README's rule (four times
    ``MAILCONFIG_SEND_TIMEOUT``: one attempt may open and send on both connections), so
    a message still being sent could be taken over and sent twice. True if it warned."""
    lease, send_timeout = settings.MAILCONFIG_SEND_LEASE, settings.MAILCONFIG_SEND_TIMEOUT
    if lease >= 4 * send_timeout:
        return False
    logger.warning(
        "MAILCONFIG_SEND_LEASE (%g s) is shorter than four times MAILCONFIG_SEND_TIMEOUT "
        "(%g s): a message still being sent may be taken over by another worker and sent "
        "twice. Set MAILCONFIG_SEND_LEASE to at least %g.",
        lease,
        send_timeout,
        4 * send_timeout,
    )
    return True
