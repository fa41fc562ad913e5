"""Builders for Email Log rows: outbox messages and their attempts, written with the ORM."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from sender.models import Attempt, Connection, OutboxMessage, Status

LOG_URL = "/admin/general-settings/mail-server/log/"


def mime_body(to: str = "user@example.com", subject: str = "Weekly report") -> str:
    """A stored message body in the outbox's format (JSON envelope + RFC 822 text)."""
    mime = f"From: app@example.com\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nHello.\r\n"
    return json.dumps({"from": "app@example.com", "recipients": [to], "mime": mime})


def logged_message(
    *,
    status: str = Status.SENT,
    queued_at: datetime | None = None,
    to: str = "user@example.com",
    subject: str = "Weekly report",
    keep_body: bool | None = None,
    **fields: Any,
) -> OutboxMessage:
    """An outbox row as the worker leaves it; by default the body is kept unless Sent."""
    keep_body = status != Status.SENT if keep_body is None else keep_body
    defaults: dict[str, Any] = {
        "message_id": f"<{timezone.now().timestamp()}.{subject.replace(' ', '')}@example.com>",
        "from_address": "app@example.com",
        "connection": Connection.PRIMARY if status in (Status.SENT, Status.FAILED) else "",
        "attempts": 1 if status in (Status.SENT, Status.FAILED, Status.RETRYING) else 0,
    }
    if status == Status.SENT:
        defaults["sent_at"] = (queued_at or timezone.now()) + timedelta(seconds=2)
    row = OutboxMessage.objects.create(
        status=status,
        to=to,
        subject=subject,
        body=mime_body(to, subject) if keep_body else "",
        **(defaults | fields),
    )
    if queued_at is not None:  # queued_at is set on insert (auto_now_add); move it afterwards
        OutboxMessage.objects.filter(pk=row.pk).update(queued_at=queued_at)
        row.refresh_from_db()
    return row


def attempt(message: OutboxMessage, **fields: Any) -> Attempt:
    """One delivery attempt of ``message`` (a successful SMTP one unless told otherwise)."""
    values: dict[str, Any] = {
        "started_at": timezone.now(),
        "duration_ms": 420,
        "transport": "SMTP (Basic)",
        "connection": Connection.PRIMARY,
        "outcome": Attempt.Outcome.SENT,
        "reply": "250 2.0.0 OK queued as 4F2A",
    }
    return Attempt.objects.create(message=message, **(values | fields))
