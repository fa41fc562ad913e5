"""The outbox's tasks, run by ``manage.py db_worker`` (Django's tasks framework).

One ``deliver_message`` task per message (and per retry, queued with
``run_after``); ``recover_outbox`` runs every ``sweep_interval()`` seconds and
queues itself again, so messages whose worker died are picked up.
``scheduled_health_check`` runs at each slot of the health check's schedule. The
sweep also keeps going the periodic tasks other apps registered (``schedules.py``).
"""

from __future__ import annotations

import time
from datetime import datetime

from django_tasks import task

from . import delivery, health_check, pauses, schedules

_last_sweep_check = 0.0


@task()
def deliver_message(message_pk: int) -> str:
    """Send one outbox message (if it is still due and nobody else took it)."""
    _keep_recovery_going()
    return delivery.deliver(message_pk)


@task()
def recover_outbox() -> int:
    """Queue again the messages no task would send, then schedule the next sweep."""
    count = delivery.recover()
    # Messages left Paused after their connection's pause ended some other way.
    count += pauses.release_orphans()
    delivery.prune_task_results()
    delivery.ensure_sweep_scheduled()
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
    if now - _last_sweep_check >= delivery.sweep_interval():
        _last_sweep_check = now
        delivery.ensure_sweep_scheduled()
