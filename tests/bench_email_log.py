"""The Email Log's benchmark (run by ``make bench`` after tests/bench.py, or on its own with
``python -m tests.bench_email_log [messages]``): the log page with its delivery summary over
a big log, on PostgreSQL (``BENCH_DATABASE_URL``, as tests/bench_outbox.py).

It fills the outbox with N messages (default 100,000) queued over the last 30 days, in
bulk (a few seconds), with known shares of statuses, connections, recipient domains,
errors and delivery times, runs ANALYZE, then requests the page signed in (each summary
period, through Django's test client, templates included) and prints the median and p95
of the response time and the number of SQL queries. The target is <= 300 ms.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import django

from tests.bench_outbox import BENCH_URL  # noqa: F401  (points DATABASE_URL at PostgreSQL first)

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from sender.models import OutboxMessage, Status  # noqa: E402

CHUNK = 5000
ROUNDS = 25
TARGET_MS = 300
LOG_URL = "/admin/general-settings/mail-server/log/"
ADMIN = "bench-admin"
DOMAINS = ("example.com", "example.org", "customer.example", "bounce.example", "partner.example")
ERRORS = (
    ("The server refused the login.", "535 5.7.8", "Check the username and password."),
    ("The recipient's mailbox does not exist.", "550 5.1.1", "Check the address."),
)


def fill_log(count: int) -> None:
    """``count`` rows in bulk; their times set by one UPDATE (queued_at is auto_now_add)."""
    with connection.cursor() as cursor:  # quicker than DELETE, and leaves no dead rows
        cursor.execute("TRUNCATE sender_attempt, sender_outboxmessage RESTART IDENTITY CASCADE")
    with transaction.atomic():
        for first in range(0, count, CHUNK):
            rows = []
            for number in range(first, min(first + CHUNK, count)):
                roll = number % 100
                status = (
                    Status.FAILED if roll < 4 else Status.RETRYING if roll < 6
                    else Status.QUEUED if roll < 7 else Status.SENT
                )  # fmt: skip
                error, code, hint = ERRORS[number % 2] if status == Status.FAILED else ("", "", "")
                rows.append(
                    OutboxMessage(
                        message_id=f"<bench.{number}@example.com>",
                        status=status,
                        attempts=0 if status == Status.QUEUED else 1 + number % 3,
                        connection=""
                        if status == Status.QUEUED
                        else ("backup" if roll % 10 == 9 else "primary"),
                        from_address="app@example.com",
                        to=f"user{number % 50}@{DOMAINS[number % len(DOMAINS)]}",
                        subject=f"Notification {number}",
                        last_error=error,
                        last_error_code=code,
                        last_error_hint=hint,
                    )
                )
            OutboxMessage.objects.bulk_create(rows)
        with connection.cursor() as cursor:
            # Spread over 30 days; sent ones took 0.2 s to ~2 min (a long tail).
            cursor.execute(
                "UPDATE sender_outboxmessage SET queued_at = now() "
                "- (id %% %s) * %s * interval '1 second' - (id %% 97) * interval '1 second'",
                [count, 30 * 86400 / count],
            )
            cursor.execute(
                "UPDATE sender_outboxmessage SET sent_at = queued_at + "
                "(0.2 + (id %% 113) * (id %% 113) / 100.0) * interval '1 second' WHERE status = %s",
                [Status.SENT],
            )
    with connection.cursor() as cursor:
        # The UPDATEs left dead rows; VACUUM also sets the visibility map index-only scans need.
        cursor.execute("VACUUM ANALYZE sender_outboxmessage")


def measure(client: Client, query: str) -> tuple[float, float, int]:
    """Median and p95 milliseconds of ROUNDS requests, and the queries of one."""
    timings = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        response = client.get(LOG_URL + query)
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    with CaptureQueriesContext(connection) as queries:
        client.get(LOG_URL + query)
    return statistics.median(timings), statistics.quantiles(timings, n=20)[-1], len(queries)


def main() -> None:
    count = (
        int(sys.argv[1])
        if len(sys.argv) > 1
        else int(os.environ.get("BENCH_LOG_MESSAGES", 100_000))
    )
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    fill_log(count)
    filled = time.perf_counter() - started
    user = get_user_model().objects.filter(username=ADMIN).first()
    user = user or get_user_model().objects.create_superuser(ADMIN, "bench@example.com", "x")
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    client = Client()
    client.force_login(user)
    client.get(LOG_URL)  # warm: templates compiled, connection open
    print(f"\nEmail Log with its delivery summary, {count:,} messages on PostgreSQL "
          f"(filled in {filled:.1f} s), {ROUNDS} requests each (target <= {TARGET_MS} ms):")  # fmt: skip
    for label, query in (
        ("summary 24 hours", ""),
        ("summary 7 days", "?summary=7d"),
        ("summary 30 days", "?summary=30d"),
        ("30 days, failed to one domain", "?summary=30d&status=failed&domain=bounce.example"),
    ):
        median, p95, queries = measure(client, query)
        verdict = "ok" if p95 <= TARGET_MS else "over target"
        print(
            f"  {label:<32} median {median:6.1f} ms   p95 {p95:6.1f} ms   {queries} SQL queries  ({verdict})"
        )
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE sender_attempt, sender_outboxmessage RESTART IDENTITY CASCADE")


if __name__ == "__main__":
    main()
