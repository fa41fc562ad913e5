"""manage.py purge_email_log: apply the Email Log's retention (run it daily, e.g. from cron)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from sender.retention import purge_email_log


class Command(BaseCommand):
    help = (
        "Delete Sent and Failed messages older than MAILCONFIG_LOG_RETENTION_DAYS from the "
        "Email Log, and drop the kept content of Failed messages older than "
        "MAILCONFIG_FAILED_BODY_DAYS (they can no longer be resent)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        result = purge_email_log()
        self.stdout.write(
            f"Email Log: deleted {result.messages_deleted} message(s) older than "
            f"{settings.MAILCONFIG_LOG_RETENTION_DAYS} days; dropped the content of "
            f"{result.bodies_dropped} failed message(s) older than "
            f"{settings.MAILCONFIG_FAILED_BODY_DAYS} days."
        )
