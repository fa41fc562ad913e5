"""Mail waits and no mail worker runs: the console's banner, and its incident on the webhook.

``alarm()`` runs for every console page that shows the banner. When a worker was seen
within ``MAILCONFIG_WORKER_STALE_AFTER`` seconds (the usual case) that is one query, on
the heartbeats' ``last_seen`` index; otherwise one more counts the waiting mail on the
outbox's (status, next_attempt_at) index, and two small ones follow only while the
banner shows.

Announcing it. A webhook task would wait for a worker, and none runs, so the web process
posts it itself. The page that first finds the alarm opens an incident (cause
``no_worker``, no connection); one open incident per connection is a database constraint,
so of several web processes and machines exactly one opens it, and that one posts
``incident.opened`` at once, with ``MAILCONFIG_ALERT_WEBHOOK_TIMEOUT`` for the whole POST:
that page waits at most that long, once per outage; the pages after it find the incident
open and post nothing. The POST is not retried (a retry would need a worker, or make
another page wait); a failure is logged. No alert mail: nothing sends without a worker.
The first worker that beats again closes the incident, and ``incident.closed`` goes out
as any incident's does, as a task (a worker runs now).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from sender import webhook
from sender.errors import MailError
from sender.models import Incident, OutboxMessage, Status, WorkerHeartbeat

logger = logging.getLogger(__name__)

NO_CONNECTION = ""  # the incident is about the workers, not about a connection
START_A_WORKER = (
    "Start a mail worker: make run starts the web server with its workers; in production "
    "run manage.py db_worker (with the console's settings and database) as a service, on "
    "this machine or another."
)


@dataclass(frozen=True)
class Alarm:
    """Mail is waiting and no worker has been seen for the stale time: what the banner says."""

    waiting: int
    oldest_queued_at: datetime
    last_seen: datetime | None  # when a worker was last seen; None: none in the last day


def waiting_now(now: datetime) -> Q:
    """Messages a worker would take now: queued or retrying and due, or sending with the
    lease of a worker that stopped run out."""
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    return (Q(status__in=[Status.QUEUED, Status.RETRYING]) & due) | Q(
        status=Status.SENDING, lease_until__lt=now
    )


def alarm(now: datetime | None = None) -> Alarm | None:
    """The alarm when mail waits and no worker was seen lately; None otherwise."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.MAILCONFIG_WORKER_STALE_AFTER)
    if WorkerHeartbeat.objects.filter(last_seen__gte=cutoff, stopped_at__isnull=True).exists():
        return None
    waiting = OutboxMessage.objects.filter(waiting_now(now)).aggregate(
        count=Count("pk"), oldest=Min("queued_at")
    )
    if not waiting["count"]:
        return None
    last_seen = WorkerHeartbeat.objects.aggregate(last=Max("last_seen"))["last"]
    return Alarm(waiting["count"], waiting["oldest"], last_seen)


def open_outage() -> Incident | None:
    """The open no-worker incident, if any."""
    return Incident.objects.filter(cause=Incident.Cause.NO_WORKER, closed_at__isnull=True).first()


def notice(found: Alarm, now: datetime | None = None) -> Incident | None:
    """Open the no-worker incident and post the webhook, unless it is open already.

    Returns the incident when this call opened it.
    """
    if open_outage() is not None:
        return None
    now = now or timezone.now()
    seen = (
        f"last seen {found.last_seen:%Y-%m-%d %H:%M:%S %Z}"
        if found.last_seen
        else "none seen in the last day"
    )
    try:
        with transaction.atomic():
            incident = Incident.objects.create(
                connection=NO_CONNECTION,
                cause=Incident.Cause.NO_WORKER,
                failing_since=found.oldest_queued_at,
                opened_at=now,
                error=f"No mail worker is running ({seen}); {found.waiting} message"
                f"{'s' if found.waiting != 1 else ''} waiting.",
                error_code="NO-WORKER",
                hint=START_A_WORKER,
                last_failure_at=now,
                failures=0,
                messages_affected=found.waiting,
            )
    except IntegrityError:
        return None  # another web process opened it a moment ago, and announces it
    logger.error("%s", incident.error)
    transaction.on_commit(lambda: _post_opened_on_a_page(incident))
    return incident


def _post_opened_on_a_page(incident: Incident) -> None:
    try:
        post_opened(incident)
    except Exception:
        # The page that noticed must render whatever the webhook does.
        logger.exception("The webhook of incident %s failed unexpectedly", incident.pk)


def post_opened(incident: Incident) -> str:
    """POST ``incident.opened`` now, within the webhook timeout for the whole POST."""
    if not settings.MAILCONFIG_ALERT_WEBHOOK_URL:
        return "no webhook configured"
    body = webhook.payload(incident, "incident.opened")
    try:  # webhook.post limits the whole POST to MAILCONFIG_ALERT_WEBHOOK_TIMEOUT
        _, outcome = webhook.post(body, f"{incident.pk}-opened")
    except MailError as error:
        outcome = error.message
    if outcome.startswith("delivered"):
        logger.info("Incident webhook %s-opened: %s.", incident.pk, outcome)
    else:
        logger.error(
            "Incident webhook %s-opened (no mail worker): %s; not retried, as no worker "
            "runs to retry it.",
            incident.pk,
            outcome,
        )
    return outcome


def worker_back(how: str, now: datetime | None = None) -> Incident | None:
    """A worker runs (again): close the open no-worker incident; return it if one was open.

    One UPDATE when none is open, which is almost always.
    """
    now = now or timezone.now()
    closed = Incident.objects.filter(cause=Incident.Cause.NO_WORKER, closed_at__isnull=True).update(
        closed_at=now, closed_by=how[:200]
    )
    if not closed:
        return None
    incident = Incident.objects.filter(cause=Incident.Cause.NO_WORKER, closed_at=now).first()
    logger.warning("A mail worker runs again: %s.", how)
    if incident is not None:
        try:
            webhook.announce(incident, "incident.closed")
        except Exception:
            # The worker that reported itself back must go on sending whatever happens here.
            logger.exception("Queueing the webhook of incident %s failed", incident.pk)
    return incident
