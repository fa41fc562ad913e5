"""The optional incident webhook: a signed JSON POST when an incident opens and closes.

``MAILCONFIG_ALERT_WEBHOOK_URL`` receives::

    {"event": "incident.opened" | "incident.closed", "incident": {...}, "console": "<url>"}

with these headers (docs/operations.md shows how to verify them):

- ``X-Mailconfig-Event``: the event, as in the body;
- ``X-Mailconfig-Delivery``: the same on every retry of one event ("12-opened"), for
  receivers that must not act twice;
- ``X-Mailconfig-Timestamp``: Unix seconds when this POST was signed;
- ``X-Mailconfig-Signature``: ``sha256=`` + hex HMAC-SHA256 over
  ``<timestamp>.<raw body>`` with ``MAILCONFIG_ALERT_WEBHOOK_SECRET`` (absent when no
  secret is set).

Each POST goes through the shared outbound session (timeouts, no redirects, our CA
file), and the whole of it (connecting, sending, the answer to its last byte) is
limited to ``MAILCONFIG_ALERT_WEBHOOK_TIMEOUT``: a receiver that answers a byte at a
time cannot hold a worker (and the mail behind it). A timeout, a lost connection, an
answer cut short, 408, 429 or 5xx is retried as a new task after the next delay of
``MAILCONFIG_ALERT_WEBHOOK_RETRY_SCHEDULE`` (a worker never sleeps on it); any
other answer, or the last retry failing, is logged and given up.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import timedelta
from typing import Any

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_tasks import task

from sender.models import Incident

from .alerts import console_link
from .deadline import WEBHOOK, time_limit
from .http import AnswerCutShort, RedirectRefused, shared_session

logger = logging.getLogger(__name__)

RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
SIGNATURE_HEADER = "X-Mailconfig-Signature"
TIMESTAMP_HEADER = "X-Mailconfig-Timestamp"


def payload(incident: Incident, event: str) -> dict[str, Any]:
    """The JSON body for ``event``, as the incident stands now."""

    def when(moment: Any) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "event": event,
        "incident": {
            "id": incident.pk,
            "connection": incident.connection,
            "cause": incident.cause,
            "cause_text": incident.get_cause_display(),
            "failing_since": when(incident.failing_since),
            "opened_at": when(incident.opened_at),
            "closed_at": when(incident.closed_at),
            "closed_by": incident.closed_by,
            "error": incident.error,
            "error_code": incident.error_code,
            "hint": incident.hint,
            "failures": incident.failures,
            "messages_affected": incident.messages_affected,
        },
        "console": console_link("settings_app:email_log"),
    }


def announce(incident: Incident, event: str) -> bool:
    """Queue the POST of ``event`` when a webhook is configured; False when none is."""
    if not settings.MAILCONFIG_ALERT_WEBHOOK_URL:
        return False
    body = payload(incident, event)
    delivery_id = f"{incident.pk}-{event.rsplit('.', 1)[-1]}"
    transaction.on_commit(lambda: post_incident_webhook.enqueue(body, delivery_id, 1))
    return True


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` + HMAC-SHA256 of ``timestamp.body``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def post(body: dict[str, Any], delivery_id: str) -> tuple[bool, str]:
    """POST once; return (whether to retry, what happened)."""
    url = settings.MAILCONFIG_ALERT_WEBHOOK_URL
    if not url:
        return False, "no webhook URL is set"
    raw = json.dumps(body, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "MailConsole-Webhook/1",
        "X-Mailconfig-Event": str(body.get("event", "")),
        "X-Mailconfig-Delivery": delivery_id,
        TIMESTAMP_HEADER: timestamp,
    }
    if settings.MAILCONFIG_ALERT_WEBHOOK_SECRET:
        headers[SIGNATURE_HEADER] = sign(settings.MAILCONFIG_ALERT_WEBHOOK_SECRET, timestamp, raw)
    limit = settings.MAILCONFIG_ALERT_WEBHOOK_TIMEOUT
    session = shared_session(timeout=limit)
    try:
        with time_limit(limit, WEBHOOK):
            response = session.post(url, data=raw, headers=headers)
    except RedirectRefused as redirect:
        return False, f"answered with a redirect, not followed: {redirect}"
    except requests.Timeout:
        return True, f"no complete answer within {limit:g} s"
    except AnswerCutShort as error:
        return True, f"the answer was cut short after {error.received} bytes"
    except requests.RequestException as error:
        return True, f"could not be reached ({type(error).__name__})"
    status = response.status_code
    response.close()
    if 200 <= status < 300:
        return False, f"delivered ({status})"
    return status in RETRIED_STATUSES, f"answered {status}"


@task()
def post_incident_webhook(body: dict[str, Any], delivery_id: str, attempt: int) -> str:
    """POST one incident event; on a temporary failure queue the next attempt for later."""
    retry, outcome = post(body, delivery_id)
    if outcome.startswith("delivered"):
        return outcome
    schedule = settings.MAILCONFIG_ALERT_WEBHOOK_RETRY_SCHEDULE
    if retry and attempt <= len(schedule):
        run_after = timezone.now() + timedelta(seconds=schedule[attempt - 1])
        post_incident_webhook.using(run_after=run_after).enqueue(body, delivery_id, attempt + 1)
        logger.warning(
            "Incident webhook %s, attempt %d: %s; trying again at %s.",
            delivery_id,
            attempt,
            outcome,
            run_after.isoformat(timespec="seconds"),
        )
        return f"attempt {attempt} {outcome}; retry queued"
    logger.error(
        "Incident webhook %s given up after attempt %d: %s.", delivery_id, attempt, outcome
    )
    return f"attempt {attempt} {outcome}; given up"
