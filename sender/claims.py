"""Claiming a batch of due messages for one worker, with a lease; and giving back the rest.

A claim is one transaction: ``SELECT ... FOR UPDATE SKIP LOCKED LIMIT n`` of the due
rows (on SQLite, which has no row locks, an exclusive transaction), then one UPDATE
that marks them Sending, counts the attempt and sets the lease, the claim time and
the connection each goes through first. Rows another worker holds are skipped, not
waited for: each message is claimed by one worker only.

Due rows are Queued or Retrying ones whose next attempt time has come, and Sending
ones whose lease ran out (their worker died): the attempt that worker abandoned is
logged first, and a message that has used every attempt fails instead. The lease
makes delivery at-least-once: a worker that dies after the server accepted a message
but before recording it leaves the message to be sent again, with the same Message-ID.

A drain that stops early (its time is up, or its worker is told to stop) gives the
messages it has not started back (``release``): their previous state, their attempt
count, no lease, so another worker takes them at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Q

from sender.models import OutboxMessage, Status

from . import outcomes, pauses, task_engine
from .sending import first_connection


def claimable(now: datetime) -> Q:
    """Rows a worker may take now: due Queued or Retrying rows, and Sending rows whose
    worker's lease ran out."""
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    return (Q(status__in=[Status.QUEUED, Status.RETRYING]) & due) | Q(
        status=Status.SENDING, lease_until__lt=now
    )


def claim_batch(now: datetime, limit: int) -> list[OutboxMessage]:
    """Take up to ``limit`` due messages for this worker (Sending, leased, one more
    attempt), oldest first. Each row keeps the state it had (``claimed_from``) for
    ``release``."""
    lease_until = now + timedelta(seconds=settings.MAILCONFIG_SEND_LEASE)
    route = first_connection()  # once per batch
    with task_engine.claim_transaction():
        if route is None:
            # Sending is paused and no backup may carry the mail: what is due waits,
            # Paused, with no sign-in at all (sender/pauses.py).
            pauses.hold(claimable(now) & ~Q(status=Status.SENDING))
        rows = list(
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(claimable(now))
            .order_by("pk")[:limit]
        )
        abandoned = [row for row in rows if row.status == Status.SENDING]
        if abandoned:
            failed = {row.pk for row in outcomes.record_abandoned(abandoned, now)}
            rows = [row for row in rows if row.pk not in failed]
        if route is None:
            pauses.hold(Q(pk__in=[row.pk for row in rows]))
            return []
        by_connection: dict[str, list[int]] = defaultdict(list)
        for row in rows:
            row.claimed_from = Status.RETRYING if row.status == Status.SENDING else row.status  # type: ignore[attr-defined]
            row.status = Status.SENDING
            row.attempts += 1
            row.lease_until = lease_until
            row.claimed_at = now
            row.sending_through = route
            by_connection[row.sending_through].append(row.pk)
        for connection, pks in by_connection.items():
            OutboxMessage.objects.filter(pk__in=pks).update(
                status=Status.SENDING,
                attempts=F("attempts") + 1,
                lease_until=lease_until,
                claimed_at=now,
                sending_through=connection,
            )
    return rows


def release(rows: Sequence[OutboxMessage]) -> int:
    """Give back claimed messages this worker has not started: their previous state, the
    attempt not counted, no lease. Returns how many were still this worker's."""
    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    for row in rows:
        groups[(getattr(row, "claimed_from", Status.QUEUED), row.attempts)].append(row.pk)
    released = 0
    for (status, attempts), pks in groups.items():
        released += OutboxMessage.objects.filter(
            pk__in=pks, status=Status.SENDING, attempts=attempts
        ).update(
            status=status,
            attempts=F("attempts") - 1,
            lease_until=None,
            claimed_at=None,
            sending_through="",
        )
    return released
