"""What a worker does with a queued message: claim it, send it, record the attempt.

Claiming is a conditional update under a row lock (``SELECT ... FOR UPDATE SKIP
LOCKED`` on PostgreSQL): a message is taken by one worker only, and only while it
is Queued or Retrying and due, or Sending with its lease run out (its worker died).
The lease makes delivery at-least-once: a worker that dies after the server
accepted a message but before recording it leaves the message to be sent again,
with the same Message-ID so the duplicate can be recognised.

A worker keeps its transport (SMTP connection, API token) open across messages,
for the configuration it was opened with: a save, an error, or a pause longer
than ``IDLE_SECONDS`` closes it, and the next message opens a new one. It keeps
one such transport per connection (primary and backup).

Failover: when a message fails permanently on the primary connection, or
temporarily and was first tried more than ``MAILCONFIG_FAILOVER_AFTER`` seconds
ago, the same attempt tries the backup connection (``stored.backup_settings()``)
and both tries are logged with their connection. While sending through a connection
is paused (its account was refused: ``sender/pauses.py``) it is not tried at all: the
backup carries the message, or it waits, Paused, until sending resumes.
"""

from __future__ import annotations

import atexit
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django_tasks_db.compat import TaskResultStatus

from sender.errors import ConfigurationError, MailError, MessageFailure, RefusedRecipient
from sender.models import Attempt, Connection, OutboxMessage, Status
from settings_app.models import Auth, Mode, Provider
from settings_app.values import MailSettings

from . import incidents, outbox, pauses, retries
from .deadline import MESSAGE, time_limit
from .factory import build_transport
from .metrics_counters import MESSAGE_FAILED, MESSAGE_SENT, DeliveryOutcome, count_outcomes
from .stored import backup_settings, current_settings
from .transports.base import Accepted, Transport
from .transports.http_api import HttpApiTransport

logger = logging.getLogger(__name__)

# A connection unused this long is closed before the next message rather than reused:
# servers drop idle clients (Postfix after 300 s, many after less), and a reply to a
# dead connection would cost the message a retry.
IDLE_SECONDS = 30.0
# Rows waiting this long past their time without a task are re-queued by the sweep.
OVERDUE_GRACE = timedelta(seconds=60)
TASK_RESULTS_KEPT = timedelta(days=1)


def deliver(message_pk: int) -> str:
    """Try to send one queued message; return what happened (for the task's result)."""
    now = timezone.now()
    row = claim(message_pk, now)
    if row is None:
        return "not due or taken by another worker"
    started, clock = timezone.now(), time.monotonic()
    email: outbox.StoredEmail | None = None
    try:
        email = outbox.StoredEmail(outbox.stored_body(row))
        if pauses.paused_connection_reason(Connection.PRIMARY) is not None:
            return _deliver_while_primary_paused(row, email)
        accepted = _send_through(connections, email)
    except MailError as error:
        connections.discard()
        backup = backup_settings() if email is not None else None
        if (
            backup is not None
            and fails_over(row, error, started)
            and _not_paused(Connection.BACKUP)
        ):
            assert email is not None
            return _deliver_through_backup(
                row, email, backup, (error, started, _elapsed_ms(clock), connections.label)
            )
        record_failure(row, error, started, _elapsed_ms(clock), connections.label)
        return f"failed: {error.message}"
    except outbox.BodyGone as gone:
        record_failure(
            row,
            MessageFailure(
                str(gone), step="Load message", code="NO-BODY", hint="Queue a new message."
            ),
            started,
            0,
            "",
        )
        return "failed: no body"
    except Exception:
        # A bug, not the server's answer: keep the message and let the lease bring it back
        # after the worker is fixed or restarted, rather than failing it.
        connections.discard()
        logger.exception("Sending message %s failed unexpectedly", row.message_id)
        raise
    record_success(row, accepted, started, _elapsed_ms(clock), connections.label)
    return "sent"


def _not_paused(connection: str) -> bool:
    return pauses.paused_connection_reason(connection) is None


def _deliver_while_primary_paused(row: OutboxMessage, email: outbox.StoredEmail) -> str:
    """Sending through the primary is paused (its account was refused): the backup carries
    the message when one is in use and not paused too; otherwise it waits, Paused."""
    backup = backup_settings()
    if backup is None or not _not_paused(Connection.BACKUP):
        pauses.hold(row)
        return "waiting: sending is paused"
    started, clock = timezone.now(), time.monotonic()
    try:
        accepted = _send_through(
            backup_connections, email, backup, own_sender=_from_the_product(email)
        )
    except MailError as error:
        backup_connections.discard()
        record_failure(
            row,
            error,
            started,
            _elapsed_ms(clock),
            backup_connections.label,
            connection=Connection.BACKUP,
        )
        return f"failed on the backup connection: {error.message}"
    except Exception:
        backup_connections.discard()
        logger.exception(
            "Sending message %s through the backup failed unexpectedly", row.message_id
        )
        raise
    record_success(
        row,
        accepted,
        started,
        _elapsed_ms(clock),
        backup_connections.label,
        connection=Connection.BACKUP,
    )
    return "sent through the backup connection (the primary's sending is paused)"


def _send_through(
    through: WorkerConnections,
    email: outbox.StoredEmail,
    config: MailSettings | None = None,
    *,
    own_sender: bool = False,
) -> Accepted:
    """Send ``email`` with the connection's open transport; what the server accepted.

    ``own_sender``: send from the connection's From Address (the backup, for a message
    that was queued from the primary's).
    """
    # Opening and sending each get MAILCONFIG_SEND_TIMEOUT in all: a slow or trickling
    # server cannot hold a worker.
    with time_limit(settings.MAILCONFIG_SEND_TIMEOUT, MESSAGE):
        transport, config = through.get(config)
    if own_sender or not email.stored.from_email:
        email.from_email = config.from_address
    with time_limit(settings.MAILCONFIG_SEND_TIMEOUT, MESSAGE):
        return transport.send(email)


def fails_over(row: OutboxMessage, error: MailError, now: datetime) -> bool:
    """Whether the primary's failure sends the message through the backup: a permanent
    failure, or a temporary one when the message was first tried longer than
    ``MAILCONFIG_FAILOVER_AFTER`` ago (this attempt, if it is the first)."""
    if not retries.is_transient(error):
        return True
    first_try = row.tries.order_by("started_at").values_list("started_at", flat=True).first()
    failing_for = now - (first_try or now)
    return failing_for >= timedelta(seconds=settings.MAILCONFIG_FAILOVER_AFTER)


def _from_the_product(email: outbox.StoredEmail) -> bool:
    """Whether the message is sent as the primary's From Address (or names no sender):
    through the backup it is then sent as the backup's, which that provider accepts.
    A sender the caller chose is kept."""
    try:
        primary_from = current_settings().from_address
    except ConfigurationError:
        primary_from = ""
    sender = email.stored.from_email
    return not sender or sender.casefold() == primary_from.casefold()


def _deliver_through_backup(
    row: OutboxMessage,
    email: outbox.StoredEmail,
    backup: MailSettings,
    primary: tuple[MailError, datetime, int, str],
) -> str:
    """The primary failed: try the backup in the same attempt, and log both tries."""
    primary_error, primary_started, primary_ms, primary_label = primary
    started, clock = timezone.now(), time.monotonic()
    try:
        accepted = _send_through(
            backup_connections, email, backup, own_sender=_from_the_product(email)
        )
    except MailError as error:
        backup_connections.discard()
        # The message's outcome is the try that leaves the most hope: if either failure
        # is temporary the message is retried (the other try is logged beside it).
        backup_try = (error, started, _elapsed_ms(clock), backup_connections.label)
        if retries.is_transient(primary_error) and not retries.is_transient(error):
            log_failed_try(row, *backup_try, connection=Connection.BACKUP)
            record_failure(row, *primary, connection=Connection.PRIMARY)
            return f"failed: {primary_error.message}"
        log_failed_try(row, *primary, connection=Connection.PRIMARY)
        record_failure(row, *backup_try, connection=Connection.BACKUP)
        return f"failed on both connections: {error.message}"
    except Exception:
        backup_connections.discard()
        logger.exception(
            "Sending message %s through the backup failed unexpectedly", row.message_id
        )
        raise
    log_failed_try(
        row,
        primary_error,
        primary_started,
        primary_ms,
        primary_label,
        connection=Connection.PRIMARY,
    )
    record_success(
        row,
        accepted,
        started,
        _elapsed_ms(clock),
        backup_connections.label,
        connection=Connection.BACKUP,
    )
    return "sent through the backup connection"


def claimable(now: datetime) -> Q:
    """Rows a worker may take now: due Queued or Retrying rows, and Sending rows whose
    worker's lease ran out."""
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    return (Q(status__in=[Status.QUEUED, Status.RETRYING]) & due) | Q(
        status=Status.SENDING, lease_until__lt=now
    )


def claim(message_pk: int, now: datetime) -> OutboxMessage | None:
    """Take the message for this worker (Sending, leased, one more attempt) or None."""
    lease = timedelta(seconds=settings.MAILCONFIG_SEND_LEASE)
    with transaction.atomic():
        row = (
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(pk=message_pk)
            .filter(claimable(now))
            .first()
        )
        if row is None:
            _reschedule_if_early(message_pk, now)
            return None
        if row.status == Status.SENDING:
            _record_abandoned_attempt(row, now)
            if row.attempts > len(settings.MAILCONFIG_RETRY_SCHEDULE):
                return None
        row.status = Status.SENDING
        row.attempts += 1
        row.lease_until = now + lease
        row.save(update_fields=["status", "attempts", "lease_until"])
    return row


def _record_abandoned_attempt(row: OutboxMessage, now: datetime) -> None:
    """The worker that was sending ``row`` stopped (killed, crashed, lost its database)
    before recording the outcome: log that attempt; fail the message after too many."""
    lease = timedelta(seconds=settings.MAILCONFIG_SEND_LEASE)
    started = (row.lease_until or now) - lease
    message = (
        "The worker sending this message stopped before recording the outcome "
        "(it was killed or lost its database connection)."
    )
    gave_up = row.attempts > len(settings.MAILCONFIG_RETRY_SCHEDULE)
    hint = "The server may have received it: a copy would have the same Message-ID. " + (
        "Check the workers' logs." if gave_up else "It is tried again."
    )
    outcome = Attempt.Outcome.PERMANENT if gave_up else Attempt.Outcome.TRANSIENT
    Attempt.objects.create(
        message=row,
        started_at=started,
        transport="",
        connection=Connection.PRIMARY,
        outcome=outcome,
        error=message,
        error_code="WORKER-STOPPED",
        hint=hint,
    )
    if gave_up:
        OutboxMessage.objects.filter(pk=row.pk).update(
            status=Status.FAILED,
            lease_until=None,
            last_error=message,
            last_error_code="WORKER-STOPPED",
            last_error_hint=hint,
        )
    count_outcomes(
        [DeliveryOutcome(Connection.PRIMARY, "", outcome, MESSAGE_FAILED if gave_up else "")]
    )


def _reschedule_if_early(message_pk: int, now: datetime) -> None:
    # A task that runs before its row's next attempt time (another machine's clock is
    # ahead of ours) must not be lost: queue it again for the row's time.
    waiting = (
        OutboxMessage.objects.filter(
            pk=message_pk,
            status__in=[Status.QUEUED, Status.RETRYING],
            next_attempt_at__gt=now,
        )
        .only("pk", "next_attempt_at")
        .first()
    )
    if waiting is not None:
        outbox.schedule(waiting, waiting.next_attempt_at)


def record_success(
    row: OutboxMessage,
    accepted: Accepted,
    started: datetime,
    duration_ms: int,
    transport: str,
    *,
    connection: str = Connection.PRIMARY,
) -> None:
    """Sent (through ``connection``): keep the metadata and the server's reply, drop the
    message's content, unless some recipients were refused: then it is kept (like a
    failed message's) so it can be resent to them."""
    now = timezone.now()
    with transaction.atomic():
        _still_ours(row).update(
            status=Status.SENT,
            sent_at=now,
            lease_until=None,
            next_attempt_at=None,
            connection=connection,
            refused_count=len(accepted.refused),
            **({} if accepted.refused else {"body": ""}),
            last_error="",
            last_error_code="",
            last_error_hint="",
        )
        Attempt.objects.create(
            message=row,
            started_at=started,
            duration_ms=duration_ms,
            transport=transport,
            connection=connection,
            outcome=Attempt.Outcome.SENT,
            reply=accepted.reply[:2000],
            refused=refused_json(accepted.refused),
        )
        count_outcomes(
            [
                DeliveryOutcome(
                    connection, transport, Attempt.Outcome.SENT, MESSAGE_SENT, duration_ms
                )
            ]
        )
    # Mail goes through again: an open incident of this connection closes.
    _tell_incidents(incidents.delivered, f"Message #{row.pk} delivered", connection=connection)


def record_failure(
    row: OutboxMessage,
    error: MailError,
    started: datetime,
    duration_ms: int,
    transport: str,
    *,
    connection: str = Connection.PRIMARY,
) -> None:
    """A failed attempt (its last try through ``connection``): Retrying with the next
    attempt queued, or Failed with the hint."""
    now = timezone.now()
    retry_at = retries.next_attempt_at(now, row.attempts, error)
    transient = retry_at is not None or retries.is_transient(error)
    with transaction.atomic():
        updated = _still_ours(row).update(
            status=Status.RETRYING if retry_at else Status.FAILED,
            next_attempt_at=retry_at,
            lease_until=None,
            connection=connection,
            last_error=error.message,
            last_error_code=error.code[:100],
            last_error_hint=error.hint,
        )
        outcome = _log_failed_attempt(
            row, error, started, duration_ms, transport, connection, transient
        )
        if retry_at is not None and updated:
            outbox.schedule(row, retry_at)
        settled = MESSAGE_FAILED if retry_at is None and updated else ""
        count_outcomes([DeliveryOutcome(connection, transport, outcome, settled, duration_ms)])
    _count_failure(row, error, started, connection, transient)


def _log_failed_attempt(
    row: OutboxMessage,
    error: MailError,
    started: datetime,
    duration_ms: int,
    transport: str,
    connection: str,
    transient: bool,
) -> str:
    """Log a failed try; return its outcome (transient or permanent)."""
    outcome = Attempt.Outcome.TRANSIENT if transient else Attempt.Outcome.PERMANENT
    Attempt.objects.create(
        message=row,
        started_at=started,
        duration_ms=duration_ms,
        transport=transport,
        connection=connection,
        outcome=outcome,
        reply=error.provider_text[:2000],
        error=error.message,
        error_code=error.code[:100],
        hint=error.hint,
        refused=refused_json(error.refused),
    )
    return outcome


def refused_json(refused: tuple[RefusedRecipient, ...]) -> list[dict[str, str]]:
    """Refused recipients as the Attempt row stores them."""
    return [{"address": item.address, "reply": item.reply[:1000]} for item in refused]


def _count_failure(
    row: OutboxMessage, error: MailError, started: datetime, connection: str, transient: bool
) -> None:
    # Every failed try, the message's last or a failover's first, counts towards the
    # incident of the connection it went through.
    _tell_incidents(
        incidents.delivery_failed,
        row,
        error,
        transient=transient,
        started=started,
        connection=connection,
    )


def _tell_incidents(report: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    # The outcome is recorded already; a fault in the incident bookkeeping (or in the alert
    # it sends) is logged and must not turn into a failed task or a lost outcome.
    try:
        report(*args, **kwargs)
    except Exception:
        logger.exception("Recording the delivery outcome for incidents failed")


def log_failed_try(
    row: OutboxMessage,
    error: MailError,
    started: datetime,
    duration_ms: int,
    transport: str,
    *,
    connection: str,
) -> None:
    """Log one failed try of a failover attempt (the message's status is the other try's);
    it counts towards its connection's incident like any failure."""
    transient = retries.is_transient(error)
    with transaction.atomic():
        outcome = _log_failed_attempt(
            row, error, started, duration_ms, transport, connection, transient
        )
        count_outcomes([DeliveryOutcome(connection, transport, outcome, "", duration_ms)])
    _count_failure(row, error, started, connection, transient)


def _still_ours(row: OutboxMessage) -> QuerySet[OutboxMessage]:
    # A worker that outlived its lease must not overwrite the outcome of the attempt
    # that took the message over (its own attempt is still logged).
    return OutboxMessage.objects.filter(pk=row.pk, status=Status.SENDING, attempts=row.attempts)


def _elapsed_ms(since: float) -> int:
    return max(0, round((time.monotonic() - since) * 1000))


def transport_label(config: MailSettings) -> str:
    """How a message goes out, for the Email Log: "SMTP (Basic)", "Microsoft Graph"..."""
    if config.mode == Mode.API:
        return "Gmail API" if config.api_provider == Provider.GOOGLE else "Microsoft Graph"
    if config.auth == Auth.OAUTH:
        return "SMTP (XOAUTH2)"
    return "SMTP (Basic)" if config.username else "SMTP"


@dataclass
class _OpenTransport:
    transport: Transport
    config: MailSettings
    last_used: float


class WorkerConnections:
    """The one transport a worker process keeps open between messages, for one connection."""

    def __init__(self, load: Callable[[], MailSettings] = current_settings) -> None:
        self.load = load
        self.current: _OpenTransport | None = None
        self.label = ""

    def get(self, config: MailSettings | None = None) -> tuple[Transport, MailSettings]:
        """The open transport for the saved configuration (or ``config``, just loaded),
        opened now if needed."""
        if config is None:
            config = self.load()  # raises ConfigurationError when nothing is saved
        self.label = transport_label(config)
        now = time.monotonic()
        current = self.current
        if current is not None and (
            current.config is not config or now - current.last_used > IDLE_SECONDS
        ):
            self.discard()
            current = None
        if current is None:
            transport = build_transport(config)
            if isinstance(transport, HttpApiTransport):
                # Never sleep on a Retry-After here: the retry is queued for later instead.
                transport.max_wait = 0
            transport.open()
            current = self.current = _OpenTransport(transport, config, now)
        current.last_used = now
        return current.transport, current.config

    def discard(self) -> None:
        """Close the open transport (after an error, a save, or when idle); never raises."""
        current, self.current = self.current, None
        if current is not None:
            try:
                current.transport.close()
            except Exception:  # close() should not raise; a worker must not die of it
                logger.exception("Closing the transport failed")


def _saved_backup() -> MailSettings:
    backup = backup_settings()
    if backup is None:
        raise ConfigurationError(
            "No backup connection is in use.",
            step="Load settings",
            hint="Save the Backup Connection with Use the backup connection when the primary "
            "fails ticked.",
        )
    return backup


connections = WorkerConnections(current_settings)
backup_connections = WorkerConnections(_saved_backup)
atexit.register(connections.discard)
atexit.register(backup_connections.discard)


# --- Recovery ---------------------------------------------------------------------


def sweep_interval() -> float:
    """Seconds between two recovery sweeps: often enough to honour the lease."""
    return max(1.0, min(60.0, settings.MAILCONFIG_SEND_LEASE / 2))


def recover(now: datetime | None = None, limit: int = 1000) -> int:
    """Queue again the messages no task will bring: Sending past their lease (the worker
    died), and Queued or Retrying rows overdue without a pending task (the process that
    queued them stopped between its commit and the task's enqueue). Returns how many."""
    from django_tasks_db.models import DBTaskResult

    from .tasks import deliver_message

    now = now or timezone.now()
    lease = timedelta(seconds=settings.MAILCONFIG_SEND_LEASE)
    pending_tasks = DBTaskResult.objects.filter(task_path=deliver_message.module_path).filter(
        Q(status=TaskResultStatus.READY)
        | Q(status=TaskResultStatus.RUNNING, started_at__gt=now - lease)
    )
    pending = {
        args["args"][0]
        for args in pending_tasks.values_list("args_kwargs", flat=True)
        if args.get("args")
    }
    stalled = Q(status=Status.SENDING, lease_until__lt=now)
    overdue = Q(status__in=[Status.QUEUED, Status.RETRYING]) & (
        Q(next_attempt_at__lt=now - OVERDUE_GRACE)
        | Q(next_attempt_at__isnull=True, queued_at__lt=now - OVERDUE_GRACE)
    )
    rows = OutboxMessage.objects.filter(stalled | overdue).only("pk")[:limit]
    count = 0
    with transaction.atomic():
        for row in rows:
            if row.pk not in pending:
                outbox.schedule(row)
                count += 1
    if count:
        logger.warning("Queued again %d message(s) that no task would have sent.", count)
    return count


def ensure_sweep_scheduled(now: datetime | None = None) -> None:
    """Make sure a recovery sweep is queued (one chain; a second one dies out by itself)."""
    from django_tasks_db.models import DBTaskResult

    from .tasks import recover_outbox

    now = now or timezone.now()
    queued = DBTaskResult.objects.filter(
        task_path=recover_outbox.module_path, status=TaskResultStatus.READY
    ).exists()
    if not queued:
        run_after = now + timedelta(seconds=sweep_interval())
        recover_outbox.using(run_after=run_after).enqueue()


def prune_task_results(now: datetime | None = None) -> int:
    """Delete finished task records after a day: every task here (deliveries, the sweep,
    health checks, expiry checks) keeps its outcome in its own rows, so the engine's
    record of a finished task is only how the work reached a worker."""
    from django_tasks_db.models import DBTaskResult

    now = now or timezone.now()
    deleted, _ = (
        DBTaskResult.objects.finished().filter(finished_at__lt=now - TASK_RESULTS_KEPT).delete()
    )
    return deleted
