"""Recording what happened to claimed messages: their new state and every try, at once.

A drain hands over the outcomes of the messages it sent (``Delivery``: the tries,
in order, and the one whose result becomes the message's) and ``record`` writes
them in one transaction: one UPDATE per connection for the sent messages, a bulk
update for the failed ones, one ``bulk_create`` for the attempts, and one wake-up
at the earliest retry. This module is the only writer of ``Attempt`` rows
(``_write_attempts``), the abandoned attempts of a dead worker included.

A worker that outlived its lease must not overwrite the outcome of the attempt that
took the message over: only rows still Sending with this claim's attempt number are
updated (the late worker's tries are still logged).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sender.errors import MailError, RefusedRecipient
from sender.models import Attempt, Connection, OutboxMessage, Status

from . import heartbeats, retries, wakeups
from .metrics_counters import MESSAGE_FAILED, MESSAGE_SENT, DeliveryOutcome, count_outcomes

REPLY_KEPT = 2000  # characters of a server reply kept on an attempt


@dataclass(frozen=True)
class Try:
    """One try of a message through one connection: when, how long, and the answer."""

    connection: str
    transport: str
    started: datetime
    duration_ms: int
    reply: str = ""
    error: MailError | None = None
    # Recipients the server refused while it took the message for the others.
    refused: tuple[RefusedRecipient, ...] = ()

    @property
    def sent(self) -> bool:
        return self.error is None

    @property
    def transient(self) -> bool:
        """A failed try that a later attempt may turn into a delivery."""
        return self.error is not None and retries.is_transient(self.error)


@dataclass
class Delivery:
    """One claimed message's attempt: its tries in order, and the one that decides its
    state (``deciding``; the other tries are logged beside it)."""

    row: OutboxMessage
    tries: list[Try] = field(default_factory=list)
    deciding: Try | None = None


@dataclass(frozen=True)
class _Failure:
    row: OutboxMessage
    error: MailError
    retry_at: datetime | None


def record(deliveries: Sequence[Delivery], *, renew: Sequence[OutboxMessage] = ()) -> None:
    """Write the outcomes and tries of ``deliveries`` in one transaction, and renew the
    lease of ``renew`` (the batch's messages not sent yet)."""
    if not deliveries and not renew:
        return
    now = timezone.now()
    sent: dict[tuple[str, int], list[OutboxMessage]] = defaultdict(list)
    failed: list[tuple[Delivery, _Failure]] = []
    for delivery in deliveries:
        deciding = delivery.deciding
        assert deciding is not None, "a delivery is recorded once it has been tried"
        if deciding.error is None:
            sent[(deciding.connection, len(deciding.refused))].append(delivery.row)
        else:
            retry_at = retries.next_attempt_at(now, delivery.row.attempts, deciding.error)
            failed.append((delivery, _Failure(delivery.row, deciding.error, retry_at)))
    # One transaction: whatever must agree with the recorded outcomes (counters of sent
    # and failed messages) is written in it too.
    with transaction.atomic():
        for (connection, refused), rows in sent.items():
            _mark_sent(rows, connection, refused, now)
        if failed:
            ours = _still_ours([delivery.row for delivery, _ in failed])
            failed = [(d, f) for d, f in failed if d.row.pk in ours]
            _mark_failed(failed)
        _write_attempts(
            [(delivery.row, item) for delivery in deliveries for item in delivery.tries]
        )
        _renew_lease(renew, now)
        if sent:
            heartbeats.count_sent(sum(len(rows) for rows in sent.values()))
        count_outcomes(_counted(deliveries, {d.row.pk for d, _ in failed}))  # last: it locks
        retry_times = [f.retry_at for _, f in failed if f.retry_at]
        if retry_times:
            wakeups.wake_after_commit(min(retry_times))


def _counted(deliveries: Sequence[Delivery], failed_ours: set[int]) -> list[DeliveryOutcome]:
    """The tries as the metrics count them; the deciding try settles its message when it
    was sent, or failed for good (and the row was still this claim's)."""
    counted = []
    for delivery in deliveries:
        for item in delivery.tries:
            settled = ""
            if item is delivery.deciding:
                if item.error is None:
                    settled = MESSAGE_SENT
                elif delivery.row.pk in failed_ours and delivery.row.status == Status.FAILED:
                    settled = MESSAGE_FAILED
            counted.append(
                DeliveryOutcome(
                    item.connection, item.transport, _outcome(item), settled, item.duration_ms
                )
            )
    return counted


def _renew_lease(rows: Sequence[OutboxMessage], now: datetime) -> None:
    # The batch's unsent messages keep a whole lease each: renewed once half of it is used.
    lease = _lease()
    expiring = [row for row in rows if row.lease_until and row.lease_until - now < lease / 2]
    if not expiring:
        return
    OutboxMessage.objects.filter(pk__in=[row.pk for row in expiring], status=Status.SENDING).update(
        lease_until=now + lease
    )
    for row in expiring:
        row.lease_until = now + lease


def record_abandoned(rows: Sequence[OutboxMessage], now: datetime) -> list[OutboxMessage]:
    """Log the attempts of ``rows``, whose worker stopped (killed, crashed, lost its
    database) before recording them; fail those with no retry left. Called inside the
    claim's transaction. Returns the rows that failed for good."""
    message = (
        "The worker sending this message stopped before recording the outcome "
        "(it was killed or lost its database connection)."
    )
    copy = "The server may have received it: a copy would have the same Message-ID. "
    gave_up: list[OutboxMessage] = []
    tries: list[tuple[OutboxMessage, Try]] = []
    for row in rows:
        final = row.attempts > len(settings.MAILCONFIG_RETRY_SCHEDULE)
        error = MailError(
            message,
            step="Send",
            code="WORKER-STOPPED",
            hint=copy + ("Check the workers' logs." if final else "It is tried again."),
        )
        error.transient = not final
        # Claimed when its lease began (rows claimed before claimed_at was kept fall back
        # to the lease they were given), through the connection it was being sent on.
        started = row.claimed_at or (row.lease_until or now) - _lease()
        connection = row.sending_through or Connection.PRIMARY
        tries.append((row, Try(connection, "", started, 0, error=error)))
        if final:
            gave_up.append(row)
    _write_attempts(tries)
    count_outcomes(
        [
            DeliveryOutcome(
                item.connection, "", _outcome(item), "" if item.transient else MESSAGE_FAILED
            )
            for _, item in tries
        ]
    )
    if gave_up:
        OutboxMessage.objects.filter(pk__in=[row.pk for row in gave_up]).update(
            status=Status.FAILED,
            lease_until=None,
            claimed_at=None,
            sending_through="",
            last_error=message,
            last_error_code="WORKER-STOPPED",
            last_error_hint=copy + "Check the workers' logs.",
        )
    return gave_up


def _write_attempts(tries: Sequence[tuple[OutboxMessage, Try]]) -> None:
    # The one place Attempt rows are written: every try of every message, in one INSERT.
    Attempt.objects.bulk_create(
        [
            Attempt(
                message=row,
                started_at=item.started,
                duration_ms=item.duration_ms,
                transport=item.transport,
                connection=item.connection,
                outcome=_outcome(item),
                reply=(item.reply if item.error is None else item.error.provider_text)[:REPLY_KEPT],
                error=item.error.message if item.error else "",
                error_code=item.error.code[:100] if item.error else "",
                hint=item.error.hint if item.error else "",
                refused=refused_json(item.error.refused if item.error else item.refused),
            )
            for row, item in tries
        ]
    )


def refused_json(refused: Sequence[RefusedRecipient]) -> list[dict[str, str]]:
    """Refused recipients as the Attempt row stores them."""
    return [{"address": item.address, "reply": item.reply[:1000]} for item in refused]


def _outcome(item: Try) -> str:
    if item.error is None:
        return Attempt.Outcome.SENT
    return Attempt.Outcome.TRANSIENT if item.transient else Attempt.Outcome.PERMANENT


def _still_ours(rows: Sequence[OutboxMessage]) -> set[int]:
    """The pks among ``rows`` still Sending under this claim (same attempt number)."""
    expected = {row.pk: row.attempts for row in rows}
    current = OutboxMessage.objects.filter(pk__in=list(expected), status=Status.SENDING)
    return {
        pk for pk, attempts in current.values_list("pk", "attempts") if expected[pk] == attempts
    }


def _mark_sent(rows: Sequence[OutboxMessage], connection: str, refused: int, now: datetime) -> None:
    """Sent (rows still under this claim): keep the metadata and drop the message's
    content, unless ``refused`` recipients were refused: then it is kept (like a failed
    message's) so it can be resent to them."""
    by_attempt: dict[int, list[int]] = defaultdict(list)
    for row in rows:
        by_attempt[row.attempts].append(row.pk)
    for attempts, pks in by_attempt.items():
        OutboxMessage.objects.filter(pk__in=pks, status=Status.SENDING, attempts=attempts).update(
            status=Status.SENT,
            sent_at=now,
            lease_until=None,
            claimed_at=None,
            sending_through="",
            next_attempt_at=None,
            connection=connection,
            refused_count=refused,
            **({} if refused else {"body": ""}),
            last_error="",
            last_error_code="",
            last_error_hint="",
        )


def _mark_failed(failures: Sequence[tuple[Delivery, _Failure]]) -> None:
    """Retrying with the next attempt's time, or Failed with the hint."""
    if not failures:
        return
    rows = []
    for delivery, failure in failures:
        row = delivery.row
        assert delivery.deciding is not None
        row.status = Status.RETRYING if failure.retry_at else Status.FAILED
        row.next_attempt_at = failure.retry_at
        row.lease_until = None
        row.claimed_at = None
        row.sending_through = ""
        row.connection = delivery.deciding.connection
        row.last_error = failure.error.message
        row.last_error_code = failure.error.code[:100]
        row.last_error_hint = failure.error.hint
        rows.append(row)
    OutboxMessage.objects.bulk_update(
        rows,
        [
            "status",
            "next_attempt_at",
            "lease_until",
            "claimed_at",
            "sending_through",
            "connection",
            "last_error",
            "last_error_code",
            "last_error_hint",
        ],
    )


def _lease() -> timedelta:
    return timedelta(seconds=settings.MAILCONFIG_SEND_LEASE)
