"""Sending that pauses while a connection's account is refused, and resumes when
something changes.

While a connection has an open incident whose last failure refused its account
(credentials, a missing permission, a refused grant: ``MailError.refuses_account``),
every further sign-in would be refused the same way, and Microsoft 365 and fail2ban
lock accounts on repeated failed sign-ins. So its messages do not try it: the backup
carries them when one is in use and not paused itself; otherwise they wait, Paused.

A Paused message is never claimed and has no task pending: it costs nothing while it
waits. Sending resumes (``resume``), and the waiting messages are queued again with a
wake-up each, when:

- the connection's settings are saved, or its OAuth authorization is made again;
- a Test Mail through it succeeds, or its health check passes (which closes the
  incident: ``incidents.delivered``);
- the admin presses **Retry now** on the incident banner.

If the next attempt is refused again, the incident pauses sending again: one failed
sign-in per change, never one per message. The recovery sweep also queues again any
message still Paused when nothing is paused any more (``release_orphans``).
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from . import outbox
from .models import Connection, Incident, OutboxMessage, Status
from .stored import backup_settings

logger = logging.getLogger(__name__)

CONNECTION_NAMES: dict[str, str] = {Connection.PRIMARY: "primary", Connection.BACKUP: "backup"}
RESUMES_WHEN = (
    "Sending resumes when the connection's settings are saved, when a Test Mail or health "
    "check through it succeeds, or when Retry now is pressed on the banner."
)


def paused_connection_reason(connection: str) -> str | None:
    """Why sending through ``connection`` is paused, or None when it is not (one query)."""
    incident = (
        Incident.objects.filter(connection=connection, closed_at__isnull=True, pauses_sending=True)
        .only("error", "error_code", "failing_since")
        .first()
    )
    return None if incident is None else reason(incident)


def reason(incident: Incident) -> str:
    """What the Email Log says of a message waiting on ``incident``'s connection."""
    name = CONNECTION_NAMES.get(incident.connection, incident.connection)
    code = f" ({incident.error_code})" if incident.error_code else ""
    return (
        f"Sending through the {name} connection is paused: it was refused with "
        f"“{incident.error}”{code}, and each new sign-in would be refused again. " + RESUMES_WHEN
    )


def waiting_reason() -> str:
    """Why Paused messages wait, for the Email Log: the primary's pause first."""
    paused = sorted(
        Incident.objects.filter(closed_at__isnull=True, pauses_sending=True),
        key=lambda incident: incident.connection != Connection.PRIMARY,
    )
    if not paused:
        return "Sending has resumed: the message is queued again within a minute."
    return " ".join(reason(incident) for incident in paused)


def hold(row: OutboxMessage) -> bool:
    """Put a message a worker has just claimed to wait, Paused, as if it had not been
    claimed (nothing was tried); False if it is no longer this worker's."""
    held = OutboxMessage.objects.filter(
        pk=row.pk, status=Status.SENDING, attempts=row.attempts
    ).update(
        status=Status.PAUSED,
        attempts=max(0, row.attempts - 1),
        lease_until=None,
        next_attempt_at=None,
    )
    return bool(held)


def resume(connection: str, how: str) -> int:
    """Sending through ``connection`` may be tried again (``how`` says why, for the log):
    lift its incident's pause and queue the waiting messages again; returns how many.

    The incident stays open until a message goes through; a new refusal pauses again.
    """
    lifted = Incident.objects.filter(
        connection=connection, closed_at__isnull=True, pauses_sending=True
    ).update(pauses_sending=False)
    if lifted:
        logger.warning(
            "Sending through the %s connection resumes: %s.",
            CONNECTION_NAMES.get(connection, connection),
            how,
        )
    return release_waiting()


def release_waiting() -> int:
    """Queue again every Paused message, each with a wake-up once this commits.

    All of them, whichever connection paused them: a message whose connection is still
    paused goes to the backup, or waits again at its first claim, without signing in.
    """
    with transaction.atomic():
        rows = list(
            OutboxMessage.objects.select_for_update()
            .filter(status=Status.PAUSED)
            .only("pk", "attempts")
        )
        for row in rows:
            row.status = Status.RETRYING if row.attempts else Status.QUEUED
            row.next_attempt_at = timezone.now()
        OutboxMessage.objects.bulk_update(rows, ["status", "next_attempt_at"])
        for row in rows:
            outbox.schedule(row)
    return len(rows)


def must_wait() -> bool:
    """Whether a message has nowhere to go: the primary is paused, and no backup is in use
    or it is paused too."""
    paused = set(
        Incident.objects.filter(closed_at__isnull=True, pauses_sending=True).values_list(
            "connection", flat=True
        )
    )
    if Connection.PRIMARY not in paused:
        return False
    return Connection.BACKUP in paused or backup_settings() is None


def release_orphans() -> int:
    """Queue again the Paused messages once they have somewhere to go (a pause lifted, or
    ended, by a path that did not release them); for the recovery sweep."""
    if not OutboxMessage.objects.filter(status=Status.PAUSED).exists() or must_wait():
        return 0
    return release_waiting()
