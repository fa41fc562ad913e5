"""The Email Log's benchmark (run by ``make bench`` after tests/bench.py, or on its own with
``python -m tests.bench_email_log [messages]``): the log page with its delivery summary over
a big log, on PostgreSQL (``BENCH_DATABASE_URL``, as tests/bench_outbox.py).

It fills the outbox with N messages (default 100,000) queued over the last 30 days, in
one INSERT ... SELECT (seconds), with known shares of statuses, connections, recipient domains,
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
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

ROUNDS = 25
TARGET_MS = 300
LOG_URL = "/admin/general-settings/mail-server/log/"
ADMIN = "bench-admin"
DOMAINS = ("example.com", "example.org", "customer.example", "bounce.example", "partner.example")
ERRORS = (
    ("The server refused the login.", "535 5.7.8", "Check the username and password."),
    ("The recipient's mailbox does not exist.", "550 5.1.1", "Check the address."),
)


# One INSERT ... SELECT over generate_series: the rows are made by the database, in seconds
# even on a loaded machine (bulk_create of 100,000 model instances took minutes here).
# n % 100 decides the status: 4% failed, 2% retrying, 1% queued, the rest sent; one in
# ten sent through the backup; the times spread over 30 days; sent ones took 0.2 s to
# about 2 minutes (a long tail).
FILL_SQL = """
INSERT INTO sender_outboxmessage (
    message_id, queued_at, status, attempts, next_attempt_at, lease_until, sent_at,
    connection, from_address, "to", cc_count, bcc_count, subject, body,
    last_error, last_error_code, last_error_hint, refused_count, resend_of_id,
    sending_through)
SELECT
    '<bench.' || n || '@example.com>', queued, status,
    CASE WHEN status = 'queued' THEN 0 ELSE 1 + n %% 3 END, NULL, NULL,
    CASE WHEN status = 'sent'
         THEN queued + (0.2 + (n %% 113) * (n %% 113) / 100.0) * interval '1 second' END,
    CASE WHEN status = 'queued' THEN '' WHEN n %% 10 = 9 THEN 'backup' ELSE 'primary' END,
    'app@example.com', 'user' || (n %% 50) || '@' || (%(domains)s::text[])[1 + n %% %(domain_count)s],
    0, 0, 'Notification ' || n, '',
    CASE WHEN status = 'failed' THEN (%(errors)s::text[])[1 + n %% 2] ELSE '' END,
    CASE WHEN status = 'failed' THEN (%(codes)s::text[])[1 + n %% 2] ELSE '' END,
    CASE WHEN status = 'failed' THEN (%(hints)s::text[])[1 + n %% 2] ELSE '' END,
    0, NULL, ''
FROM (
    SELECT n,
        now() - n * %(spacing)s * interval '1 second' - (n %% 97) * interval '1 second' AS queued,
        CASE WHEN n %% 100 < 4 THEN 'failed' WHEN n %% 100 < 6 THEN 'retrying'
             WHEN n %% 100 < 7 THEN 'queued' ELSE 'sent' END AS status
    FROM generate_series(0, %(last)s) AS n
) AS generated
"""


def fill_log(count: int) -> None:
    """``count`` messages queued over the last 30 days (see FILL_SQL), then VACUUM ANALYZE."""
    with connection.cursor() as cursor:  # quicker than DELETE, and leaves no dead rows
        cursor.execute("TRUNCATE sender_attempt, sender_outboxmessage RESTART IDENTITY CASCADE")
        cursor.execute(
            FILL_SQL,
            {
                "domains": list(DOMAINS),
                "domain_count": len(DOMAINS),
                "errors": [error for error, _, _ in ERRORS],
                "codes": [code for _, code, _ in ERRORS],
                "hints": [hint for _, _, hint in ERRORS],
                "spacing": 30 * 86400 / count,
                "last": count - 1,
            },
        )
        # Sets the visibility map that index-only scans need, and the planner's statistics.
        cursor.execute("VACUUM ANALYZE sender_outboxmessage")


def measure(client: Client, query: str) -> tuple[float, float, float, float, int]:
    """Median and p95 milliseconds of ROUNDS requests, the median of the time spent in
    SQL and of this process's CPU time (far less sensitive to a loaded machine), and the
    queries of one request."""
    timings, sql, cpu = [], [], []
    for _ in range(ROUNDS):
        started, cpu_started = time.perf_counter(), time.process_time()
        with CaptureQueriesContext(connection) as queries:
            response = client.get(LOG_URL + query)
        timings.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
        sql.append(sum(float(q["time"]) for q in queries.captured_queries) * 1000)
        assert response.status_code == 200, response.status_code
    return (
        statistics.median(timings),
        statistics.quantiles(timings, n=20)[-1],
        statistics.median(sql),
        statistics.median(cpu),
        len(queries),
    )


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
        median, p95, sql, cpu, queries = measure(client, query)
        verdict = "ok" if p95 <= TARGET_MS else "over target"
        print(
            f"  {label:<30} median {median:6.1f} ms  p95 {p95:6.1f} ms  {queries} SQL queries "
            f"({verdict}); medians: SQL {sql:5.1f} ms, CPU here {cpu:5.1f} ms"
        )
    print(f"  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs while measured)")
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE sender_attempt, sender_outboxmessage RESTART IDENTITY CASCADE")


if __name__ == "__main__":
    main()
