"""The expiry radar's alert mail: once per credential and threshold, to the Admin Mail Address.

A daily check (``settings_app/tasks.py``, on the workers) reads the radar and, for
each credential that has crossed a threshold (30, 7 and 1 days ahead, and expired),
sends one alert mail the way the incidents' alerts go (``sender.alerts.send_alert``:
through the other connection when there is one, within ``MAILCONFIG_SEND_TIMEOUT``).
Each mail is an ``ExpiryAlert`` row, written before sending under a unique constraint,
so the same threshold is never mailed twice, by any number of workers; the next
threshold mails again, and a new expiry date (a renewed or replaced credential) starts
over. A mail that could not be sent is tried again at the next check.

The check runs daily at ``CHECK_AT`` (console time) and once whenever a worker starts;
the outbox's recovery sweep queues it again if its chain broke. Every function takes
``now`` so tests move the clock instead of sleeping.
"""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta

from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from sender.alerts import CONNECTION_NAMES, AlertNotSent, console_link, send_alert
from sender.schedules import next_daily, queued_runs
from settings_app.values import MailSettings

from .expiry_radar import Expiry, radar
from .models import ExpiryAlert

logger = logging.getLogger(__name__)

# When the daily check runs, in TIME_ZONE: before the working day, so a warning is read
# the day it is sent. One fixed time also merges the chains of workers started together.
CHECK_AT = time(6, 0)
# A row left in Sending this long ago belongs to a check that died mid-send: try again.
STALE_SENDING = timedelta(hours=1)
ORDER = [choice.value for choice in ExpiryAlert.Threshold]


def check_expiries(now: datetime | None = None) -> list[ExpiryAlert]:
    """Send the alert mails now due; return the alerts this call tried (sent or not)."""
    now = now or timezone.now()
    tried = []
    for item in radar(now):
        if item.severity is None:
            continue
        alert = _claim(item, now)
        if alert is not None:
            tried.append(_send(alert, item))
    return tried


def with_last_alert(items: list[Expiry]) -> list[tuple[Expiry, ExpiryAlert | None]]:
    """Each radar item with the last alert mail about it (this expiry date), for the page."""
    keys = {item.alert_key for item in items}
    latest: dict[tuple[str, datetime], ExpiryAlert] = {}
    for alert in ExpiryAlert.objects.filter(key__in=keys):  # newest first
        latest.setdefault((alert.key, alert.expires_at), alert)
    return [(item, latest.get((item.alert_key, item.expires_at))) for item in items]


def _claim(item: Expiry, now: datetime) -> ExpiryAlert | None:
    """This threshold's row, if this check is the one to send it; None when it went already."""
    if item.severity is None:
        return None  # nothing crossed: no threshold to send
    later = ORDER[ORDER.index(item.severity) + 1 :]
    same_credential = ExpiryAlert.objects.filter(key=item.alert_key, expires_at=item.expires_at)
    if same_credential.filter(threshold__in=later).exists():
        return None  # a nearer threshold was mailed already (a clock set back)
    try:
        with transaction.atomic():
            return same_credential.create(
                key=item.alert_key,
                expires_at=item.expires_at,
                threshold=item.severity,
                what=item.headline[:300],
                sent_at=now,
                outcome=ExpiryAlert.Outcome.SENDING,
            )
    except IntegrityError:
        pass  # mailed, or being mailed: only a failed or abandoned try is taken over
    retry = same_credential.filter(threshold=item.severity).filter(
        Q(outcome=ExpiryAlert.Outcome.FAILED)
        | Q(outcome=ExpiryAlert.Outcome.SENDING, sent_at__lt=now - STALE_SENDING)
    )
    if not retry.update(outcome=ExpiryAlert.Outcome.SENDING, sent_at=now):
        return None
    return same_credential.get(threshold=item.severity)


def _send(alert: ExpiryAlert, item: Expiry) -> ExpiryAlert:
    try:
        via, recipient = send_alert(item.connection, lambda config, via: build(item, config, via))
    except AlertNotSent as error:
        logger.error("The expiry alert %s (%s) was not sent: %s", alert.key, alert.threshold, error)
        alert.outcome, alert.via, alert.note = ExpiryAlert.Outcome.FAILED, error.via, error.note
    else:
        alert.outcome, alert.via, alert.note = ExpiryAlert.Outcome.SENT, via, f"Sent to {recipient}"
    alert.save(update_fields=["outcome", "via", "note"])
    return alert


def build(item: Expiry, config: MailSettings, via: str) -> EmailMessage:
    """The alert: what expires and when, what to do, where to do it."""
    connection = CONNECTION_NAMES.get(item.connection, item.connection)
    when = timezone.localtime(item.expires_at).strftime("%Y-%m-%d %H:%M %Z")
    if item.severity == ExpiryAlert.Threshold.EXPIRED:
        effect = f"Mail through the {connection} connection stops working with it"
    else:
        effect = f"When it does, mail through the {connection} connection stops"
    lines = [
        f"{item.what} {item.when}.",
        "",
        f"Expires: {when}",
        f"{effect} (with a backup connection in use, the other connection takes over).",
        "",
        f"What to do: {item.fix}",
        f"Go to the setting: {console_link(item.page)}#{item.anchor}",
        "",
        f"This alert was sent through the {CONNECTION_NAMES.get(via, via)} connection. One "
        "is sent 30, 7 and 1 days ahead and once it has expired, each only once; the "
        "console's pages show the warning until the credential is renewed.",
    ]
    subject = f"Expiry warning: {item.headline}"[:150]
    return EmailMessage(subject, "\n".join(lines), from_email=config.from_address)


def next_check(after: datetime) -> datetime:
    """The first ``CHECK_AT`` strictly after ``after``."""
    return next_daily(CHECK_AT, after)


def ensure_scheduled(now: datetime | None = None) -> datetime | None:
    """Queue the next daily check unless one is queued; return its time (None: was queued)."""
    from .tasks import expiry_alert_check

    if queued_runs(expiry_alert_check).exists():
        return None
    slot = next_check(now or timezone.now())
    expiry_alert_check.using(run_after=slot).enqueue()
    return slot


def check_at_worker_start() -> None:
    """Queue a check to run now: a worker starting after a pause catches up at once."""
    from .tasks import expiry_alert_check

    expiry_alert_check.enqueue()
