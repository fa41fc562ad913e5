"""Mail workers' heartbeats: each ``db_worker`` process keeps its ``WorkerHeartbeat`` row
fresh, so the console can tell whether any worker runs, where, and since when.

A worker writes its row when its loop starts (``start``), then at most every
``beat_interval()`` seconds (5) as it polls an empty queue and after each task (``beat``,
called by the db_worker command), and with each message it records as sent
(``count_sent``, inside that outcome's transaction). No thread of its own: a worker busy
with one message beats again when the message is done, which ``MAILCONFIG_SEND_TIMEOUT``
bounds far below ``MAILCONFIG_WORKER_STALE_AFTER``. A graceful stop sets ``stopped_at``;
a killed worker's row just stops being fresh. Each worker, at its start, deletes the
rows not seen for a day.

The row is this process's: ``start`` remembers its key for the process's life (a
worker is one process running one loop), so workers on several machines, on SQLite or
PostgreSQL, each update only their own row and never wait on one another.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError
from django.db.models import F
from django.utils import timezone

from sender import worker_outage
from sender.models import WorkerHeartbeat

logger = logging.getLogger(__name__)

BEAT_INTERVAL = 5.0  # at most; a few beats fit in MAILCONFIG_WORKER_STALE_AFTER in any case
PRUNE_AFTER = timedelta(days=1)

_row_pk: int | None = None
_started_at: datetime | None = None
_last_beat = 0.0  # time.monotonic() of this process's last beat


def start(now: datetime | None = None) -> WorkerHeartbeat:
    """Record this process as a running worker (and forget workers gone for a day).

    Run with the worker's start-up steps, so a database fault here is waited out like any
    (sender/worker_faults.py); after such a fault the process keeps its row."""
    global _started_at, _last_beat
    now = now or timezone.now()
    prune(now)
    row = WorkerHeartbeat.objects.filter(pk=_row_pk).first() if _row_pk is not None else None
    if row is not None:
        row.last_seen = now
        row.save(update_fields=["last_seen"])
    else:
        _started_at = now
        row = _create(now)
    _last_beat = time.monotonic()
    worker_outage.worker_back(f"Worker {row.host}:{row.pid} started", now)
    return row


def beat(now: datetime | None = None) -> bool:
    """Record that this worker is alive, at most every ``BEAT_INTERVAL`` seconds.

    Returns whether it wrote. A database fault is logged, never raised: the worker goes
    on, and beats again when the database is back.
    """
    global _last_beat
    if _row_pk is None or time.monotonic() - _last_beat < beat_interval():
        return False
    _last_beat = time.monotonic()
    now = now or timezone.now()
    try:
        if not WorkerHeartbeat.objects.filter(pk=_row_pk).update(last_seen=now):
            _create(now)  # pruned by another worker's start after a very long send
        worker_outage.worker_back(f"Worker {socket.gethostname()}:{os.getpid()} seen", now)
    except DatabaseError as fault:
        logger.warning("This worker's heartbeat could not be recorded: %s", fault)
        return False
    return True


def beat_interval() -> float:
    """Seconds between two beats: ``BEAT_INTERVAL``, or a quarter of the stale time if less."""
    return min(BEAT_INTERVAL, settings.MAILCONFIG_WORKER_STALE_AFTER / 4)


def count_sent(count: int = 1) -> None:
    """Add ``count`` messages to this worker's sent total (and it was just seen).

    Called where delivery records a message as sent, inside that transaction, so the
    total moves with the outcome. Outside a worker (immediate delivery) it does nothing.
    """
    if _row_pk is not None:
        WorkerHeartbeat.objects.filter(pk=_row_pk).update(
            messages_sent=F("messages_sent") + count, last_seen=timezone.now()
        )


def stop(now: datetime | None = None) -> None:
    """This worker stops (gracefully, or its loop failed): say so on its row."""
    global _row_pk
    if _row_pk is None:
        return
    now = now or timezone.now()
    try:
        WorkerHeartbeat.objects.filter(pk=_row_pk).update(last_seen=now, stopped_at=now)
    except DatabaseError as fault:
        logger.warning("This worker's stop could not be recorded: %s", fault)
    _row_pk = None


def prune(now: datetime) -> int:
    """Delete the rows of workers not seen for ``PRUNE_AFTER``; returns how many."""
    deleted, _ = WorkerHeartbeat.objects.filter(last_seen__lt=now - PRUNE_AFTER).delete()
    return deleted


def _create(now: datetime) -> WorkerHeartbeat:
    global _row_pk
    row = WorkerHeartbeat.objects.create(
        host=socket.gethostname()[:255],
        pid=os.getpid(),
        started_at=_started_at or now,
        last_seen=now,
    )
    _row_pk = row.pk
    return row


def running(now: datetime | None = None) -> list[WorkerHeartbeat]:
    """The workers seen within ``MAILCONFIG_WORKER_STALE_AFTER`` that have not stopped,
    the longest-running first."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.MAILCONFIG_WORKER_STALE_AFTER)
    rows = WorkerHeartbeat.objects.filter(last_seen__gte=cutoff, stopped_at__isnull=True)
    return list(rows.order_by("started_at", "pk"))


def last_seen() -> datetime | None:
    """When any worker was last seen (None: none ever was, or not for a day)."""
    row = WorkerHeartbeat.objects.order_by("-last_seen").values_list("last_seen", flat=True)
    return row.first()
