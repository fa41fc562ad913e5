"""The outbox's tasks, run by ``manage.py db_worker`` (Django's tasks framework).

``drain_outbox`` is a wake-up: it sends whatever is due, a batch at a time
(``sender/drain.py``); the outbox rows are the work, so a wake-up carries no
arguments and one covers every message queued before it runs. Retries are
wake-ups queued with ``run_after``. ``recover_outbox`` runs every
``sweep_interval()`` seconds and queues itself again: it wakes a worker for
messages whose worker died or whose wake-up was lost. ``scheduled_health_check``
runs at each slot of the health check's schedule. The sweep also keeps going the
periodic tasks other apps registered (``schedules.py``).
"""

from __future__ import annotations

import time
from datetime import datetime

from django_tasks import task

from . import drain, health_check, pauses, recovery, schedules

_last_sweep_check = 0.0


@task()
def drain_outbox() -> str:
    """Send the messages that are due (if another worker has not taken them)."""
    _keep_recovery_going()
    return drain.drain()


@task()
def deliver_message(message_pk: int) -> str:
    """The per-message task of earlier versions: tasks queued before an upgrade drain."""
    _keep_recovery_going()
    return drain.drain()


@task()
def recover_outbox() -> int:
    """Wake a worker for messages no wake-up would send, then schedule the next sweep."""
    count = recovery.recover()
    # Messages left Paused after their connection's pause ended some other way.
    count += pauses.release_orphans()
    recovery.prune_task_results()
    recovery.ensure_sweep_scheduled()
    # The health check's chain, if a worker died while running it (or none was queued).
    health_check.ensure_scheduled()
    # And the other apps' periodic tasks (the expiry radar's daily alert check).
    schedules.keep_schedules()
    return count


@task()
def scheduled_health_check(slot: str) -> str:
    """Send the scheduled health check of ``slot`` (ISO time), then queue the next one."""
    return health_check.run_scheduled(datetime.fromisoformat(slot))


def _keep_recovery_going() -> None:
    # A worker killed while running the sweep ends its chain; busy workers restart it.
    global _last_sweep_check
    now = time.monotonic()
    if now - _last_sweep_check >= recovery.sweep_interval():
        _last_sweep_check = now
        recovery.ensure_sweep_scheduled()
