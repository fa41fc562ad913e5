"""What a worker does when woken: drain the outbox, a batch at a time.

The outbox row is the unit of delivery; the ``drain_outbox`` task only says "there
is mail to drain". A drain repeats, while messages are due:

1. claim a batch of ``MAILCONFIG_BATCH_SIZE`` due messages (``claims.py``: one
   transaction, SKIP LOCKED, a lease); a full batch means more may be due, so it
   wakes another worker to share the backlog;
2. read the saved configuration once (a save since the last batch closes the open
   connection), and send the messages one by one over the worker's open connection
   (``sending.py``, failover included);
3. record the outcomes (``outcomes.py``: one transaction for the batch's states
   and attempts) and tell the incidents (``incident_reports.py``).

Outcomes are recorded at the end of a batch, or sooner once the messages sent
since the last record took ``RECORD_EVERY`` (a slow server), or what the last
record took if that is longer (a slow database: recording takes at most about half
the time). Against a server slower than the database every message is recorded as
it goes. A worker killed mid-batch has sent that much, or one message, without
recording it; those are sent again after the lease, with the same Message-ID.
Recording also renews the lease of the batch's unsent messages once half of it is
used, so each message has a whole lease for itself. The incidents hear of the
batch once, at its end.

One drain runs at most ``DRAIN_SECONDS``, then wakes a worker to go on (so a
worker's other tasks get their turn and a stopping worker stops soon). When the
worker is told to stop (SIGTERM, SIGINT: ``request_stop``) the drain finishes the
message it is sending, records, and gives back the messages it has not started
(``claims.release``), so other workers take them at once. A drain that finds
nothing due leaves a wake-up at the earliest next attempt time (a retry).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from django.conf import settings
from django.db.models import Min
from django.utils import timezone

from sender.errors import ConfigurationError
from sender.models import OutboxMessage, Status
from settings_app.values import MailSettings

from . import claims, incident_reports, outcomes, sending, wakeups
from .stored import current_settings

logger = logging.getLogger(__name__)

# Seconds one drain task runs before it hands over to a new wake-up.
DRAIN_SECONDS = 10.0
# Seconds of sending after which the outcomes so far are recorded, even mid-batch.
RECORD_EVERY = 0.05

_stop_requested = False


def request_stop() -> None:
    """This worker process is stopping: the running drain finishes its message, gives
    back the rest of its batch and takes no new one (the worker command calls this on
    SIGTERM and SIGINT)."""
    global _stop_requested
    _stop_requested = True


def stop_requested() -> bool:
    """Whether this worker process was told to stop."""
    return _stop_requested


def drain(seconds: float = DRAIN_SECONDS) -> str:
    """Send due messages, a batch at a time, for at most ``seconds``; what happened."""
    until = time.monotonic() + seconds
    sent = failed = 0
    size = settings.MAILCONFIG_BATCH_SIZE
    while not stop_requested():
        batch = claims.claim_batch(timezone.now(), size)
        if not batch:
            _wake_for_next_retry()
            break
        if len(batch) == size:
            wakeups.wake()  # more may be due: another worker can share them
        done = deliver_batch(batch, until)
        sent += sum(1 for d in done if d.deciding is not None and d.deciding.error is None)
        failed += sum(1 for d in done if d.deciding is not None and d.deciding.error is not None)
        if len(done) < len(batch) or time.monotonic() >= until:
            # Out of time, or stopping: a new wake-up goes on where this one stopped (after
            # a stop, in another worker, or this one once it runs again).
            wakeups.wake()
            break
    return f"{sent} sent, {failed} failed"


def deliver_batch(batch: Sequence[OutboxMessage], until: float) -> list[outcomes.Delivery]:
    """Send the claimed ``batch`` until done, out of time (``until``, monotonic) or told to
    stop; record every outcome; give back what was not started. Returns the deliveries."""
    config = _saved_configuration()
    done: list[outcomes.Delivery] = []
    pending: list[outcomes.Delivery] = []
    since = time.monotonic()
    record_every = RECORD_EVERY
    index = 0
    try:
        for index, row in enumerate(batch):
            # The first message is sent even when time is up: every drain makes progress.
            if stop_requested() or (index and time.monotonic() >= until):
                claims.release(batch[index:])
                break
            pending.append(sending.send(row, config))
            if _refused_an_account(pending[-1]):
                # Each further sign-in would be refused too (and count towards locking the
                # account): the rest of the batch goes back, and the next claim, after the
                # incident has paused that connection, sends it elsewhere or holds it.
                claims.release(batch[index + 1 :])
                break
            if time.monotonic() - since >= record_every:
                took = _record(pending, renew=batch[index + 1 :])
                # Recording at most about half of the time, whatever the database's speed,
                # and after every message that took longer to send than a record.
                record_every = max(RECORD_EVERY, took)
                done += pending
                pending, since = [], time.monotonic()
    except BaseException:
        # A bug, not the server's answer: the message that raised keeps its lease and
        # comes back after it; the ones not started go back at once.
        claims.release(batch[index + 1 :])
        raise
    finally:
        _record(pending)  # what was sent is recorded, whatever happened next
        done += pending
        incident_reports.report(done)
    return done


def _refused_an_account(delivery: outcomes.Delivery) -> bool:
    return any(item.error is not None and item.error.refuses_account for item in delivery.tries)


def _record(deliveries: list[outcomes.Delivery], *, renew: Sequence[OutboxMessage] = ()) -> float:
    """Record ``deliveries``; the seconds it took."""
    started = time.monotonic()
    outcomes.record(deliveries, renew=renew)
    return time.monotonic() - started


def _saved_configuration() -> MailSettings | None:
    # Read once per batch; None (nothing saved) lets each message fail with the reason.
    try:
        return current_settings()
    except ConfigurationError:
        return None


def _wake_for_next_retry() -> None:
    # Nothing is due now: a wake-up at the earliest next attempt keeps the retries going
    # (it exists already unless it was lost, or this drain ran early on a skewed clock).
    soonest = OutboxMessage.objects.filter(
        status__in=[Status.QUEUED, Status.RETRYING], next_attempt_at__gt=timezone.now()
    ).aggregate(soonest=Min("next_attempt_at"))["soonest"]
    if soonest is not None:
        wakeups.wake(soonest)
