"""A log with known statuses, connections, times and durations, for the delivery summary's tests."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sender.models import Connection, OutboxMessage, Status
from tests.log_rows import logged_message

AUTH_FAILED = "The server refused the login."
AUTH_HINT = "Check the username and password on the Mail Server page."
MAILBOX_UNKNOWN = "The recipient's mailbox does not exist."
MAILBOX_HINT = "Check the address; the receiving server does not know it."


def fill_delivery_log(now: datetime, days: int = 3, seed: int = 19) -> list[OutboxMessage]:
    """Messages every hour or so over ``days`` days before ``now``: mostly sent in seconds,
    a slow hour (a backlog), failures at two domains with two known errors, the backup
    carrying the last six hours, and a few retrying and waiting."""
    pick = random.Random(seed)
    rows = []
    for hours_ago in range(days * 24):
        for _ in range(pick.randint(1, 5) if hours_ago < 24 else pick.randint(0, 2)):
            queued = now - timedelta(hours=hours_ago, minutes=pick.randint(0, 59))
            if queued > now:
                continue
            roll = pick.random()
            connection = Connection.BACKUP if hours_ago < 6 else Connection.PRIMARY
            if hours_ago == 0 and roll < 0.4:
                rows.append(logged_message(status=Status.QUEUED, queued_at=queued, attempts=0))
            elif roll < 0.1:
                rows.append(
                    logged_message(
                        status=Status.FAILED,
                        queued_at=queued,
                        to=pick.choice(["ops@bounce.example", "Ann <ann@Bounce.example>"]),
                        connection=connection,
                        last_error=AUTH_FAILED,
                        last_error_code="535 5.7.8",
                        last_error_hint=AUTH_HINT,
                    )
                )
            elif roll < 0.15:
                rows.append(
                    logged_message(
                        status=Status.FAILED,
                        queued_at=queued,
                        to="nobody@gone.example, ops@example.com",
                        connection=connection,
                        last_error=MAILBOX_UNKNOWN,
                        last_error_code="550 5.1.1",
                        last_error_hint=MAILBOX_HINT,
                    )
                )
            elif roll < 0.2:
                rows.append(
                    logged_message(
                        status=Status.RETRYING, queued_at=queued, last_error="Server busy."
                    )
                )
            else:
                slow = hours_ago == 9  # a backlog: minutes, not seconds
                seconds = pick.uniform(240, 600) if slow else pick.uniform(0.5, 20)
                rows.append(
                    logged_message(
                        status=Status.SENT,
                        queued_at=queued,
                        sent_at=queued + timedelta(seconds=seconds),
                        connection=connection,
                        to=f"user{pick.randint(1, 9)}@example.com",
                    )
                )
    return rows
