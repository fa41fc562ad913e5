"""How long the Email Log keeps messages, and the purge that applies it.

Two limits (Django settings, from the environment):
``MAILCONFIG_LOG_RETENTION_DAYS`` for a finished message's row and attempts, and
``MAILCONFIG_FAILED_BODY_DAYS`` for the encrypted content of a Failed message, or of a
Sent one that some recipients refused, kept only so an admin can resend it. Messages still on their way (Queued, Sending, Retrying) are
never purged: their content is needed to deliver them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import OutboxMessage, Status

FINISHED = (Status.SENT, Status.FAILED)


@dataclass(frozen=True)
class PurgeResult:
    """What one purge removed."""

    messages_deleted: int
    bodies_dropped: int


def purge_email_log(*, now: datetime | None = None) -> PurgeResult:
    """Delete finished messages past retention, and drop old Failed messages' content."""
    now = now or timezone.now()
    log_cutoff = now - timedelta(days=settings.MAILCONFIG_LOG_RETENTION_DAYS)
    body_cutoff = now - timedelta(days=settings.MAILCONFIG_FAILED_BODY_DAYS)
    with transaction.atomic():
        expired = OutboxMessage.objects.filter(status__in=FINISHED, queued_at__lt=log_cutoff)
        # Attempts go with their message (CASCADE); delete() counts them per model.
        _, per_model = expired.delete()
        messages_deleted = per_model.get(OutboxMessage._meta.label, 0)
        # A Failed message's age counts from its last attempt (it may have been resent).
        stale_ids = list(
            OutboxMessage.objects.filter(
                Q(status=Status.FAILED) | Q(status=Status.SENT, refused_count__gt=0)
            )
            .exclude(body="")
            .annotate(failed_at=Coalesce(Max("tries__started_at"), "queued_at"))
            .filter(failed_at__lt=body_cutoff)
            .values_list("pk", flat=True)
        )
        bodies_dropped = OutboxMessage.objects.filter(pk__in=stale_ids).update(body="")
    return PurgeResult(messages_deleted=messages_deleted, bodies_dropped=bodies_dropped)
