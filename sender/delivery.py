"""What a worker does with a queued message: claim it, send it, record the attempt.

Claiming is a conditional update under a row lock (``SELECT ... FOR UPDATE SKIP
LOCKED`` on PostgreSQL): a message is taken by one worker only, and only while it
is Queued or Retrying and due, or Sending with its lease run out (its worker died).
The lease makes delivery at-least-once: a worker that dies after the server
accepted a message but before recording it leaves the message to be sent again,
with the same Message-ID so the duplicate can be recognised.

A worker keeps its transport (SMTP connection, API token) open across messages,
for the configuration it was opened with: a save, an error, or a pause longer
than ``IDLE_SECONDS`` closes it, and the next message opens a new one.
"""

from __future__ import annotations

import atexit
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django_tasks_db.compat import TaskResultStatus

from sender.errors import MailError
from sender.models import Attempt, Connection, OutboxMessage, Status
from settings_app.models import Auth, Mode, Provider
from settings_app.values import MailSettings

from . import outbox, retries
from .deadline import MESSAGE, time_limit
from .factory import build_transport
from .stored import current_settings
from .transports.base import Transport
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
        # Opening and sending each get MAILCONFIG_SEND_TIMEOUT in all: a slow or trickling
        # server cannot hold a worker.
        with time_limit(settings.MAILCONFIG_SEND_TIMEOUT, MESSAGE):
            transport, config = connections.get()
        if not email.from_email:
            email.from_email = config.from_address
        with time_limit(settings.MAILCONFIG_SEND_TIMEOUT, MESSAGE):
            reply = transport.send(email)
    except MailError as error:
        connections.discard()
        record_failure(row, error, started, _elapsed_ms(clock), connections.label)
        return f"failed: {error.message}"
    except outbox.BodyGone as gone:
        record_failure(
            row,
            MailError(str(gone), step="Load message", code="NO-BODY", hint="Queue a new message."),
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
    record_success(row, reply, started, _elapsed_ms(clock), connections.label)
    return "sent"


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
    Attempt.objects.create(
        message=row,
        started_at=started,
        transport="",
        connection=Connection.PRIMARY,
        outcome=Attempt.Outcome.PERMANENT if gave_up else Attempt.Outcome.TRANSIENT,
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
    row: OutboxMessage, reply: str, started: datetime, duration_ms: int, transport: str
) -> None:
    """Sent: keep the metadata and the server's reply, drop the message's content."""
    now = timezone.now()
    with transaction.atomic():
        _still_ours(row).update(
            status=Status.SENT,
            sent_at=now,
            lease_until=None,
            next_attempt_at=None,
            connection=Connection.PRIMARY,
            body="",
            last_error="",
            last_error_code="",
            last_error_hint="",
        )
        Attempt.objects.create(
            message=row,
            started_at=started,
            duration_ms=duration_ms,
            transport=transport,
            connection=Connection.PRIMARY,
            outcome=Attempt.Outcome.SENT,
            reply=reply[:2000],
        )


def record_failure(
    row: OutboxMessage, error: MailError, started: datetime, duration_ms: int, transport: str
) -> None:
    """A failed attempt: Retrying with the next attempt queued, or Failed with the hint."""
    now = timezone.now()
    retry_at = retries.next_attempt_at(now, row.attempts, error)
    transient = retry_at is not None or retries.is_transient(error)
    with transaction.atomic():
        updated = _still_ours(row).update(
            status=Status.RETRYING if retry_at else Status.FAILED,
            next_attempt_at=retry_at,
            lease_until=None,
            connection=Connection.PRIMARY,
            last_error=error.message,
            last_error_code=error.code[:100],
            last_error_hint=error.hint,
        )
        Attempt.objects.create(
            message=row,
            started_at=started,
            duration_ms=duration_ms,
            transport=transport,
            connection=Connection.PRIMARY,
            outcome=Attempt.Outcome.TRANSIENT if transient else Attempt.Outcome.PERMANENT,
            reply=error.provider_text[:2000],
            error=error.message,
            error_code=error.code[:100],
            hint=error.hint,
        )
        if retry_at is not None and updated:
            outbox.schedule(row, retry_at)


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
    """The one transport a worker process keeps open between messages."""

    def __init__(self) -> None:
        self.current: _OpenTransport | None = None
        self.label = ""

    def get(self) -> tuple[Transport, MailSettings]:
        """The open transport for the saved configuration, opened now if needed."""
        config = current_settings()  # raises ConfigurationError when nothing is saved
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


connections = WorkerConnections()
atexit.register(connections.discard)


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
    """Delete the finished task records of the outbox's tasks after a day (the outbox
    rows are the record; the tasks are only how a message reached a worker)."""
    from django_tasks_db.models import DBTaskResult

    from .tasks import deliver_message, recover_outbox

    now = now or timezone.now()
    paths = [deliver_message.module_path, recover_outbox.module_path]
    deleted, _ = (
        DBTaskResult.objects.finished()
        .filter(task_path__in=paths, finished_at__lt=now - TASK_RESULTS_KEPT)
        .delete()
    )
    return deleted
