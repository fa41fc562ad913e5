"""Scheduled health checks: a real Test Mail through the saved primary, and the backup when on.

The schedule (off, hourly, daily at HH:MM in ``TIME_ZONE``; ``HealthCheckSchedule``)
is kept by one task on Django's tasks framework, queued with ``run_after`` set to the
next slot: when it runs it sends the checks, then queues itself for the slot after.
Saving the schedule replaces the queued task; the outbox's recovery sweep
(``recover_outbox``, every minute while a worker runs) queues one again if the chain
was broken (a worker killed mid-check), so no cron entry is needed.

Each run is recorded (``HealthCheckRun``; the Mail Server page shows the last 30).
A failed run opens an incident like a failed delivery, a passed one closes it.
Every function takes ``now`` so tests move the clock instead of sleeping.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.utils import timezone

from sender.errors import ConfigurationError, MailError
from sender.models import Connection, HealthCheckRun, HealthCheckSchedule
from settings_app.values import MailSettings

from . import incidents
from .alerts import admin_address
from .deadline import MESSAGE, time_limit
from .delivery import transport_label
from .factory import build_transport
from .schedules import next_daily, queued_runs

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django_tasks_db.models import DBTaskResult
from .stored import backup_settings, current_settings

logger = logging.getLogger(__name__)

HISTORY = 30  # runs shown on the Mail Server page
KEPT = 200  # runs kept in the database; older ones are deleted
SUBJECT = "Health check from the Mail Console"


def next_run(schedule: HealthCheckSchedule, after: datetime) -> datetime | None:
    """The first slot of ``schedule`` strictly after ``after`` (None when it is off)."""
    local = timezone.localtime(after)
    if schedule.frequency == HealthCheckSchedule.Frequency.HOURLY:
        hour = local.replace(minute=0, second=0, microsecond=0)
        # Added in UTC: an hour later is an hour later, summer time or not.
        return hour.astimezone(UTC) + timedelta(hours=1)
    if schedule.frequency == HealthCheckSchedule.Frequency.DAILY:
        return next_daily(schedule.daily_at, after)
    return None


def _queued_checks() -> QuerySet[DBTaskResult]:
    from .tasks import scheduled_health_check

    return queued_runs(scheduled_health_check)


def ensure_scheduled(now: datetime | None = None) -> datetime | None:
    """Queue the next check if the schedule is on and none is queued; return its slot."""
    from .tasks import scheduled_health_check

    schedule = HealthCheckSchedule.load()
    slot = next_run(schedule, now or timezone.now())
    if slot is None or _queued_checks().exists():
        return None
    scheduled_health_check.using(run_after=slot).enqueue(slot.isoformat())
    return slot


def reschedule(now: datetime | None = None) -> datetime | None:
    """The schedule changed: drop the queued check and queue the new schedule's next one."""
    _queued_checks().delete()
    return ensure_scheduled(now)


def run_scheduled(slot: datetime, now: datetime | None = None) -> str:
    """Run the checks of ``slot`` (unless the schedule moved or it already ran), then queue
    the next slot."""
    schedule = HealthCheckSchedule.load()
    if next_run(schedule, slot - timedelta(seconds=1)) != slot:
        outcome = "skipped: the schedule changed since this check was queued"
    elif runs := run_checks(scheduled_for=slot):
        outcome = ", ".join(f"{run.connection} {'ok' if run.ok else 'failed'}" for run in runs)
    else:
        outcome = "skipped: this slot already ran"
    # The slot after this one, even if this task ran early (another machine's clock).
    ensure_scheduled(max(now or timezone.now(), slot))
    return outcome


def targets() -> list[tuple[str, MailSettings | MailError]]:
    """The connections to check: the saved primary (or why there is none), the backup if on."""
    found: list[tuple[str, MailSettings | MailError]] = []
    try:
        found.append((Connection.PRIMARY, current_settings()))
    except ConfigurationError as error:
        found.append((Connection.PRIMARY, error))
    backup = backup_settings()
    if backup is not None:
        found.append((Connection.BACKUP, backup))
    return found


def run_checks(scheduled_for: datetime | None = None) -> list[HealthCheckRun]:
    """Send one Test Mail through each connection now; record and report each outcome."""
    schedule = HealthCheckSchedule.load()
    runs = []
    for connection, config in targets():
        run = check(connection, config, schedule.recipient, scheduled_for)
        if run is not None:
            runs.append(run)
    prune()
    return runs


def check(
    connection: str,
    config: MailSettings | MailError,
    recipient: str,
    scheduled_for: datetime | None = None,
) -> HealthCheckRun | None:
    """One check through one connection: open, send, close, each within the send time limit.

    A scheduled check first claims its slot (the row, unique per connection and slot): None
    when another worker has it already."""
    started, clock = timezone.now(), time.monotonic()
    run = HealthCheckRun(started_at=started, scheduled_for=scheduled_for, connection=connection)
    if scheduled_for is not None:
        try:
            with transaction.atomic():
                run.save()
        except IntegrityError:
            return None
    try:
        if isinstance(config, MailError):
            raise config
        run.transport = transport_label(config)
        run.recipient = recipient or admin_address(config)
        if not run.recipient:
            raise ConfigurationError(
                "No Admin Mail Address is saved, and the health check names no other recipient.",
                step="Load settings",
                hint="Enter an Admin Mail Address on the Mail Server page, or a recipient "
                "for the health check.",
            )
        transport = build_transport(config)
        try:
            with time_limit(settings.MAILCONFIG_SEND_TIMEOUT, MESSAGE):
                transport.open()
            with time_limit(settings.MAILCONFIG_SEND_TIMEOUT, MESSAGE):
                transport.send(_message(config, run.recipient, connection))
        finally:
            transport.close()
    except MailError as error:
        failure: MailError | None = error
        run.ok = False
        run.error, run.error_code, run.hint = error.message, error.code[:100], error.hint
    else:
        failure = None
        run.ok = True
    run.duration_ms = max(0, round((time.monotonic() - clock) * 1000))
    run.save()
    if failure is None:
        incidents.delivered("Health check passed", connection=connection)
    else:
        logger.warning("Health check through the %s connection failed: %s", connection, run.error)
        incidents.health_check_failed(failure, started=started, connection=connection)
    return run


def _message(config: MailSettings, recipient: str, connection: str) -> EmailMessage:
    sent_at = timezone.localtime().strftime("%Y-%m-%d %H:%M:%S %Z")
    body = (
        f"This is a scheduled health check of the Mail Console, sent at {sent_at} through "
        f"the {connection} connection ({transport_label(config)}).\n\n"
        "If you can read this, the product can send mail with the saved settings. The "
        "schedule is set under Health check on the Mail Server page."
    )
    return EmailMessage(SUBJECT, body, from_email=config.from_address, to=[recipient])


def history(limit: int = HISTORY) -> list[HealthCheckRun]:
    """The last runs, oldest first (the strip reads left to right)."""
    return list(reversed(HealthCheckRun.objects.exclude(ok=None)[:limit]))


def prune() -> None:
    """Delete runs beyond the newest ``KEPT``."""
    keep = HealthCheckRun.objects.values_list("pk", flat=True)[:KEPT]
    HealthCheckRun.objects.exclude(pk__in=list(keep)).delete()
