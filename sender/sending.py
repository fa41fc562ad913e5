"""Sending one claimed message: through the connection it tries first, then the backup.

Failover: when a message fails permanently on the primary connection, or
temporarily and was first tried more than ``MAILCONFIG_FAILOVER_AFTER`` seconds
ago, the same attempt tries the backup connection (``stored.backup_settings()``)
and both tries are returned, each with its connection, for the Email Log. The
message's state follows the try that leaves the most hope: if either failure is
temporary the message is retried.

Which connection a batch's messages try first is decided in one place,
``first_connection``; the claim records it on each row, so an attempt abandoned by a
dead worker is logged with the connection it was on. While sending through a
connection is paused (its account was refused: ``sender/pauses.py``) it is not tried
at all: the backup carries the messages, or they wait, Paused, until sending resumes.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from sender.errors import ConfigurationError, MailError, MessageFailure
from sender.models import Connection, OutboxMessage
from settings_app.values import MailSettings

from . import outbox, pauses, retries, worker_connections
from .deadline import MESSAGE, time_limit
from .outcomes import Delivery, Try
from .stored import backup_settings, current_settings
from .transports.base import Accepted
from .worker_connections import WorkerConnections

logger = logging.getLogger(__name__)


def first_connection() -> str | None:
    """The connection the messages claimed now try first: the primary (failover may then
    take one to the backup), or the backup while the primary's sending is paused; None
    when neither may be tried and the messages must wait. One query while nothing is
    paused."""
    if pauses.paused_connection_reason(Connection.PRIMARY) is None:
        return Connection.PRIMARY
    if backup_settings() is not None and _not_paused(Connection.BACKUP):
        return Connection.BACKUP
    return None


def _not_paused(connection: str) -> bool:
    return pauses.paused_connection_reason(connection) is None


def send(row: OutboxMessage, primary_config: MailSettings | None) -> Delivery:
    """Send the claimed ``row`` (``primary_config``: the saved configuration, read once
    for the batch; None when nothing is saved) and return its tries.

    An unexpected exception (a bug, not the server's answer) propagates: the message
    keeps its lease and comes back after it.
    """
    delivery = Delivery(row)
    try:
        email = outbox.StoredEmail(outbox.stored_body(row))
    except outbox.BodyGone as gone:
        error = MessageFailure(
            str(gone), step="Load message", code="NO-BODY", hint="Queue a new message."
        )
        delivery.deciding = Try(
            row.sending_through or Connection.PRIMARY, "", timezone.now(), 0, error=error
        )
        delivery.tries.append(delivery.deciding)
        return delivery

    if row.sending_through == Connection.BACKUP:
        # The primary is paused, or the message was on the backup when its worker died.
        only = _try(
            worker_connections.backup,
            Connection.BACKUP,
            email,
            None,
            own_sender=_from_the_product(email),
        )
        delivery.tries.append(only)
        delivery.deciding = only
        return delivery

    primary = _try(worker_connections.primary, Connection.PRIMARY, email, primary_config)
    delivery.tries.append(primary)
    delivery.deciding = primary
    if primary.error is None:
        return delivery
    backup = backup_settings()
    if (
        backup is None
        or not fails_over(row, primary.error, primary.started)
        or not _not_paused(Connection.BACKUP)
    ):
        return delivery
    # A worker killed from here on was sending through the backup.
    OutboxMessage.objects.filter(pk=row.pk).update(sending_through=Connection.BACKUP)
    second = _try(
        worker_connections.backup,
        Connection.BACKUP,
        email,
        backup,
        own_sender=_from_the_product(email),
    )
    delivery.tries.append(second)
    if second.error is not None and primary.transient and not second.transient:
        delivery.deciding = primary
    else:
        delivery.deciding = second
    return delivery


def _try(
    through: WorkerConnections,
    connection: str,
    email: outbox.StoredEmail,
    config: MailSettings | None,
    *,
    own_sender: bool = False,
) -> Try:
    started, clock = timezone.now(), time.monotonic()
    try:
        accepted = _send_through(through, email, config, own_sender=own_sender)
    except MailError as error:
        through.discard()
        return Try(connection, through.label, started, _elapsed_ms(clock), error=error)
    except Exception:
        through.discard()
        logger.exception(
            "Sending message %s through the %s connection failed unexpectedly",
            email.extra_headers.get("Message-ID") or "(queued)",
            connection,
        )
        raise
    return Try(
        connection,
        through.label,
        started,
        _elapsed_ms(clock),
        reply=accepted.reply,
        refused=accepted.refused,
    )


def _send_through(
    through: WorkerConnections,
    email: outbox.StoredEmail,
    config: MailSettings | None,
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


def _elapsed_ms(since: float) -> int:
    return max(0, round((time.monotonic() - since) * 1000))
