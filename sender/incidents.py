"""Incidents: when mail through a connection stops being delivered, and when it starts again.

The worker reports each recorded attempt here (``sender/delivery.py``), the health
check each run (``sender/health_check.py``). An incident opens at:

- a permanent failure (credentials, TLS, permission, a configuration that cannot work),
- a grant that needs authorization again (``invalid_grant``, the grant removed),
- ``MAILCONFIG_ALERT_AFTER_TRANSIENT_FAILURES`` temporary failures in a row,
- a failed health check (at once: it is one deliberate probe, run hours apart).

Failures that belong to one message, not to the connection (a refused recipient, a
message whose content is gone, a worker killed mid-send), neither open nor extend one.
Opening announces the incident once: one alert mail (``sender/alerts.py``), one webhook
POST (``sender/webhook.py``). The next successful delivery through the same connection
closes it, which posts the webhook again. One open incident per connection is a
database constraint, so two workers failing at once open one incident, not two.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from sender.errors import MailError
from sender.models import Attempt, Connection, Incident, OutboxMessage

from . import pauses

logger = logging.getLogger(__name__)

# Our own codes of the stored attempts that concerned one message only (a MessageFailure:
# the content gone, the worker stopped): they never count towards a run of failures.
MESSAGE_ONLY_CODES = frozenset({"NO-BODY", "WORKER-STOPPED"})


def open_incident(connection: str = Connection.PRIMARY) -> Incident | None:
    """The open incident of ``connection``, if any."""
    return Incident.objects.filter(connection=connection, closed_at__isnull=True).first()


def open_incidents() -> list[Incident]:
    """Every open incident, the primary's first (what the banner shows)."""
    rows = Incident.objects.filter(closed_at__isnull=True)
    return sorted(rows, key=lambda incident: incident.connection != Connection.PRIMARY)


def delivery_failed(
    message: OutboxMessage,
    error: MailError,
    *,
    transient: bool,
    started: datetime,
    connection: str = Connection.PRIMARY,
) -> Incident | None:
    """Count an attempt the worker has recorded as failed; return the incident it opened."""
    if error.concerns_message:
        return None
    if _add_to_open(connection, error, message, started):
        return None
    if transient and not error.needs_reauthorization:
        needed = settings.MAILCONFIG_ALERT_AFTER_TRANSIENT_FAILURES
        recent = list(
            Attempt.objects.filter(connection=connection)
            .exclude(error_code__in=MESSAGE_ONLY_CODES)
            .order_by("-started_at", "-pk")
            .values_list("outcome", "message_id", "started_at")[:needed]
        )
        if len(recent) < needed or any(o != Attempt.Outcome.TRANSIENT for o, _, _ in recent):
            return None
        cause = Incident.Cause.TRANSIENT
        affected = len({message_pk for _, message_pk, _ in recent})
        since = min(when for _, _, when in recent)
        failures = len(recent)
    else:
        cause = Incident.Cause.GRANT if error.needs_reauthorization else Incident.Cause.PERMANENT
        affected, since, failures = 1, started, 1
    return _open(
        connection, cause, error, since=since, affected=affected, failures=failures, message=message
    )


def health_check_failed(
    error: MailError, *, started: datetime, connection: str = Connection.PRIMARY
) -> Incident | None:
    """A failed health check opens an incident at once (or adds to the open one)."""
    if _add_to_open(connection, error, None, started):
        return None
    cause = Incident.Cause.GRANT if error.needs_reauthorization else Incident.Cause.HEALTH_CHECK
    return _open(connection, cause, error, since=started, affected=0, failures=1, message=None)


def delivered(
    how: str, *, connection: str = Connection.PRIMARY, now: datetime | None = None
) -> Incident | None:
    """Mail went through ``connection``: close its open incident; return it if one was open.

    ``how`` says what proved it ("Message #12 delivered", "Health check passed").
    One UPDATE when nothing is open, which is almost always.
    """
    now = now or timezone.now()
    closed = Incident.objects.filter(connection=connection, closed_at__isnull=True).update(
        closed_at=now, closed_by=how[:200]
    )
    if not closed:
        return None
    incident = Incident.objects.filter(connection=connection, closed_at=now).first()
    if incident is not None:
        logger.warning("Mail through the %s connection is delivered again: %s.", connection, how)
        _after_commit(lambda: _announce_closed(incident.pk))
    # Messages that waited while its sending was paused go again.
    pauses.release_waiting()
    return incident


def _add_to_open(
    connection: str, error: MailError, message: OutboxMessage | None, started: datetime
) -> bool:
    """Add the failure to the open incident (the last error, counts); False if none is open."""
    incident = open_incident(connection)
    if incident is None:
        return False
    new_message = 0
    if message is not None:
        # A message's first failure inside the incident makes it one more message affected;
        # its retries do not.
        earlier = Attempt.objects.filter(
            message=message, started_at__gte=incident.failing_since
        ).exclude(outcome=Attempt.Outcome.SENT)
        new_message = int(earlier.count() <= 1)
    Incident.objects.filter(pk=incident.pk).update(
        error=error.message,
        error_code=error.code[:100],
        hint=error.hint,
        **_what_it_means(error),
        last_failure_at=started,
        failures=F("failures") + 1,
        messages_affected=F("messages_affected") + new_message,
    )
    return True


def _what_it_means(error: MailError) -> dict[str, bool]:
    # The last failure decides: a refusal after a timeout pauses sending, a timeout after a
    # refusal (a health check) lets it go on.
    return {
        "affects_every_message": error.affects_every_message,
        "pauses_sending": error.refuses_account,
    }


def _open(
    connection: str,
    cause: str,
    error: MailError,
    *,
    since: datetime,
    affected: int,
    failures: int,
    message: OutboxMessage | None,
) -> Incident | None:
    now = timezone.now()
    try:
        with transaction.atomic():
            incident = Incident.objects.create(
                connection=connection,
                cause=cause,
                failing_since=since,
                opened_at=now,
                error=error.message,
                error_code=error.code[:100],
                hint=error.hint,
                **_what_it_means(error),
                last_failure_at=now,
                failures=failures,
                messages_affected=affected,
            )
    except IntegrityError:
        # Another worker opened it a moment ago (and announces it): count this failure there.
        _add_to_open(connection, error, message, since)
        return None
    logger.error(
        "Mail through the %s connection is not being delivered (%s): %s",
        connection,
        incident.get_cause_display(),
        error,
    )
    _after_commit(lambda: _announce_opened(incident.pk))
    return incident


def _after_commit(announce: object) -> None:
    # Announced once the incident is committed: the alert and the webhook never speak
    # of an incident a rollback undid. Outside a transaction this runs at once.
    transaction.on_commit(announce)  # type: ignore[arg-type]


def _announce_opened(incident_pk: int) -> None:
    from . import alerts, webhook

    incident = Incident.objects.filter(pk=incident_pk).first()
    if incident is None:
        return
    # Neither may stop the worker that reported the failure: it still has mail to send.
    try:
        alerts.send_alert_mail(incident)
    except Exception:
        logger.exception("The alert mail of incident %s failed unexpectedly", incident_pk)
    try:
        webhook.announce(incident, "incident.opened")
    except Exception:
        logger.exception("Queueing the webhook of incident %s failed", incident_pk)


def _announce_closed(incident_pk: int) -> None:
    from . import webhook

    incident = Incident.objects.filter(pk=incident_pk).first()
    if incident is None:
        return
    try:
        webhook.announce(incident, "incident.closed")
    except Exception:
        logger.exception("Queueing the webhook of incident %s failed", incident_pk)
