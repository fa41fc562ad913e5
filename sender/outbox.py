"""The outbox's public interface: queue a message, queue it again, resend a copy.

A queued message is one ``OutboxMessage`` row (the truth the Email Log reads) and
one task on Django's tasks framework that a worker (``manage.py db_worker``) runs
to send it. Both are written in the caller's transaction: the row at once, the
task when the transaction commits (``transaction.on_commit``), so a rolled-back
request sends nothing and a worker never looks for a row it cannot see yet.

The message is stored as the exact bytes to send (with its Message-ID and Date
fixed), so every attempt sends the same message and a rare duplicate after a
crash carries the same Message-ID. Those bytes and the envelope are encrypted
with the same keys as the stored secrets (a password-reset link is a secret).
"""

from __future__ import annotations

import email
import email.policy
import json
from dataclasses import dataclass
from datetime import datetime
from email.generator import BytesGenerator
from email.message import Message
from email.utils import make_msgid
from io import BytesIO
from typing import Any, cast

from django.core.mail import EmailMessage
from django.core.mail.utils import DNS_NAME
from django.db import transaction

from sender.errors import ConfigurationError
from sender.models import Attempt, OutboxMessage, Status

from .stored import current_settings


class BodyGone(Exception):
    """The message's content is no longer kept (delivered, or failed too long ago)."""


@dataclass(frozen=True)
class StoredBody:
    """What the encrypted ``body`` column holds: the envelope and the message's bytes."""

    from_email: str
    recipients: list[str]
    bcc: list[str]
    mime: bytes
    # Only ``recipients`` may get it, not everyone in its headers (a resend to the
    # recipients a server refused): only SMTP, whose envelope is separate, can do that.
    envelope_only: bool = False

    def to_json(self) -> str:
        # surrogateescape + JSON's \\u escapes keep any non-UTF-8 byte intact.
        data: dict[str, Any] = {
            "from": self.from_email,
            "recipients": self.recipients,
            "bcc": self.bcc,
            "mime": self.mime.decode("utf-8", "surrogateescape"),
        }
        if self.envelope_only:
            data["envelope_only"] = True
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> StoredBody:
        data = json.loads(text)
        return cls(
            from_email=data["from"],
            recipients=list(data["recipients"]),
            bcc=list(data.get("bcc", [])),
            mime=data["mime"].encode("utf-8", "surrogateescape"),
            envelope_only=bool(data.get("envelope_only", False)),
        )


class StoredEmail(EmailMessage):
    """An ``EmailMessage`` whose MIME is the stored bytes, for the transports.

    The transports read ``from_email``, ``recipients()``, ``bcc`` and ``message()``;
    ``message()`` gives back the stored message, not a rebuilt one (which would get
    a new Date and, without care, a new Message-ID).
    """

    def __init__(self, body: StoredBody) -> None:
        super().__init__(from_email=body.from_email, bcc=body.bcc)
        self.stored = body
        self.envelope_only = body.envelope_only

    def recipients(self) -> list[str]:
        return list(self.stored.recipients)

    def message(self, *, policy: Any = None) -> Message:
        parsed = parse_mime(self.stored.mime)
        if self.from_email and (
            not parsed.get("From") or self.from_email != self.stored.from_email
        ):
            # Queued before any From Address was saved, or sent through the backup
            # connection, which sends as its own From Address: the worker sets it.
            del parsed["From"]
            parsed["From"] = self.from_email
        return parsed


class ParsedMessage(Message):
    """A stored message read back; written out like Django's messages
    (``as_bytes(linesep=...)``, no "From " mangling)."""

    # Django calls as_bytes(linesep=...) on its messages, which the stdlib's signature lacks.
    def as_bytes(  # type: ignore[override]
        self, unixfrom: bool = False, linesep: str = "\n", policy: Any = None
    ) -> bytes:
        buffer = BytesIO()
        generator = BytesGenerator(buffer, mangle_from_=False)
        generator.flatten(self, unixfrom=unixfrom, linesep=linesep)
        return buffer.getvalue()


def parse_mime(data: bytes) -> ParsedMessage:
    """The stored bytes as a message; compat32 writes them back byte for byte."""
    parsed = email.message_from_bytes(data, _class=ParsedMessage, policy=email.policy.compat32)
    return cast(ParsedMessage, parsed)  # _class makes it one; the stubs say Message


def has_body(row: OutboxMessage) -> bool:
    """Whether the message's content is still kept (so it can be sent or resent)."""
    return bool(row.body)


def stored_body(row: OutboxMessage) -> StoredBody:
    """The decrypted envelope and message; ``BodyGone`` if it is no longer kept."""
    if not has_body(row):
        raise BodyGone(
            "The content of this message is no longer kept: it is dropped once a message "
            "is delivered, and a few days after it finally failed."
        )
    return StoredBody.from_json(row.body)


def enqueue(message: EmailMessage, *, resend_of: OutboxMessage | None = None) -> OutboxMessage:
    """Store ``message`` in the outbox and queue it for a worker (when the transaction commits).

    Gives the message a Message-ID if it has none; the ID stays the same on every attempt.
    """
    ensure_message_id(message)
    if not message.from_email:
        message.from_email = _configured_from_address()
    mime = message.message().as_bytes(linesep="\r\n")
    body = StoredBody(
        from_email=message.from_email or "",
        recipients=[str(address) for address in message.recipients()],
        bcc=[str(address) for address in message.bcc],
        mime=mime,
    )
    row = OutboxMessage.objects.create(
        message_id=_header(message, "Message-ID"),
        status=Status.QUEUED,
        from_address=str(message.from_email or "")[:254],
        to=", ".join(str(address) for address in message.to),
        cc_count=len(message.cc),
        bcc_count=len(message.bcc),
        subject=str(message.subject)[:998],
        body=body.to_json(),
        resend_of=resend_of,
    )
    schedule(row)
    return row


def requeue(row: OutboxMessage) -> None:
    """Queue a Failed message again, as it is: same Message-ID, its attempts kept."""
    if row.status != Status.FAILED:
        raise ValueError(f"Only a failed message can be queued again (this one is {row.status}).")
    stored_body(row)  # raises BodyGone when there is nothing left to send
    updated = OutboxMessage.objects.filter(pk=row.pk, status=Status.FAILED).update(
        status=Status.QUEUED, next_attempt_at=None, lease_until=None
    )
    if not updated:
        raise ValueError("The message is no longer failed (it was queued again meanwhile).")
    row.status, row.next_attempt_at, row.lease_until = Status.QUEUED, None, None
    schedule(row)


def resend_copy(row: OutboxMessage) -> OutboxMessage:
    """Queue a new message with the same envelope and content, a new Message-ID, ``resend_of=row``."""
    body = stored_body(row)
    parsed = parse_mime(body.mime)
    del parsed["Message-ID"]
    parsed["Message-ID"] = make_msgid(domain=DNS_NAME)
    copy = OutboxMessage.objects.create(
        message_id=parsed["Message-ID"],
        status=Status.QUEUED,
        from_address=row.from_address,
        to=row.to,
        cc_count=row.cc_count,
        bcc_count=row.bcc_count,
        subject=row.subject,
        body=StoredBody(
            from_email=body.from_email,
            recipients=body.recipients,
            bcc=body.bcc,
            mime=parsed.as_bytes(linesep="\r\n"),
        ).to_json(),
        resend_of=row,
    )
    schedule(copy)
    return copy


def resend_to_refused(row: OutboxMessage) -> OutboxMessage:
    """Queue the same message (same Message-ID: they never got it) to the recipients the
    server refused when ``row`` was sent, and to them only; ``resend_of=row``."""
    addresses = refused_recipients(row)
    if not addresses:
        raise ValueError("No recipient of this message was refused.")
    body = stored_body(row)
    copy = OutboxMessage.objects.create(
        message_id=row.message_id,
        status=Status.QUEUED,
        from_address=row.from_address,
        to=", ".join(addresses),
        subject=row.subject,
        body=StoredBody(
            from_email=body.from_email,
            recipients=addresses,
            bcc=[],
            mime=body.mime,
            envelope_only=True,
        ).to_json(),
        resend_of=row,
    )
    schedule(copy)
    return copy


def refused_recipients(row: OutboxMessage) -> list[str]:
    """The addresses refused by the attempt that sent ``row`` (none unless it was sent)."""
    if row.status != Status.SENT or not row.refused_count:
        return []
    sent = row.tries.filter(outcome=Attempt.Outcome.SENT).order_by("-started_at", "-pk").first()
    return [item["address"] for item in (sent.refused if sent else [])]


def schedule(row: OutboxMessage, run_after: datetime | None = None) -> None:
    """Enqueue the task that sends ``row`` once the current transaction commits."""
    # Imported here: the task module imports the delivery engine, which imports this one.
    from .tasks import deliver_message

    task = deliver_message.using(run_after=run_after) if run_after else deliver_message
    pk = row.pk
    transaction.on_commit(lambda: task.enqueue(pk))


def ensure_message_id(message: EmailMessage) -> str:
    """The message's Message-ID, set now (in ``extra_headers``) if it had none."""
    existing = _header(message, "Message-ID")
    if existing:
        return existing
    message.extra_headers["Message-ID"] = make_msgid(domain=DNS_NAME)
    return message.extra_headers["Message-ID"]


def _header(message: EmailMessage, name: str) -> str:
    for key, value in message.extra_headers.items():
        if key.lower() == name.lower():
            return str(value)
    return ""


def _configured_from_address() -> str:
    try:
        return current_settings().from_address
    except ConfigurationError:
        return ""  # nothing saved yet: the worker uses the From Address saved by then
