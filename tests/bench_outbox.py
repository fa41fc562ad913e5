"""The outbox's benchmark (run by ``make bench`` after tests/bench.py, or on its own with
``python -m tests.bench_outbox [messages]``; ``BENCH_OUTBOX_MESSAGES`` also sets the count).

- Enqueue cost: ``send_mail()`` per message, queued (a row and a task, committed) vs
  immediate (a new backend per call: connect, STARTTLS, AUTH, send, as ``send_mail()``
  does by default).
- Drain rate: N queued messages sent by 1, 2 and 4 ``manage.py db_worker`` processes to
  one loopback SMTP server (STARTTLS + AUTH) in its own process, on PostgreSQL
  (``BENCH_DATABASE_URL``, default ``postgresql://postgres@127.0.0.1:5432/mailconfig_bench``,
  created if missing). The rate is taken between the 5th and the 95th percentile of the
  messages' sent times, so worker start-up (importing Django) is not counted.
- Worker overhead: the one-worker rate against the synchronous backend sending the same
  N messages over one connection (target >= 0.7x).
- Against a slower server: the same comparison (one worker vs the synchronous backend)
  with a server that takes ``SLOW_SERVER_DELAY`` before it accepts each message, as a
  real one does: the worker's costs are fixed per message, so the ratio depends on how
  long the server takes.
- Engine floor: N tasks that do nothing, run by one worker: what django-tasks-db's
  worker costs per task here (take a task, mark it running, record its result) before
  any mail is sent. With one task per message, one worker cannot beat
  1 / (engine's time per task + synchronous time per message).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

BENCH_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/mailconfig_bench"
)
os.environ["DATABASE_URL"] = BENCH_URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
ROOT = Path(__file__).resolve().parent.parent


def ensure_database(url: str) -> None:
    """Create the benchmark's database on the server if it is not there."""
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE "{name}"')


try:
    ensure_database(BENCH_URL)
except Exception as error:  # psycopg.OperationalError: no server there
    print(f"\nOutbox benchmark skipped: PostgreSQL not reachable at {BENCH_URL} ({error}).")
    sys.exit(0)

import django  # noqa: E402

django.setup()

import trustme  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.mail import get_connection, send_mail  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django_tasks_db.models import DBTaskResult  # noqa: E402

from sender.models import Attempt, OutboxMessage, Status  # noqa: E402
from tests.bench import RECIPIENT, USER, start_smtp_server  # noqa: E402

WORKER_COUNTS = (1, 2, 4)
SLOW_SERVER_DELAY = 0.05  # seconds before the server's 250 to each message
SLOW_SERVER_MESSAGES = 200
ENQUEUE_SAMPLE = 200


def reset_outbox() -> None:
    Attempt.objects.all().delete()
    OutboxMessage.objects.all().delete()
    DBTaskResult.objects.all().delete()


def enqueue_cost(count: int) -> tuple[float, float]:
    """Seconds per send_mail(), queued and immediate."""
    reset_outbox()
    settings.MAILCONFIG_DELIVERY = "queued"
    started = time.perf_counter()
    for i in range(count):
        send_mail(f"Alert {i}", "Body", USER, [RECIPIENT])
    queued = (time.perf_counter() - started) / count
    settings.MAILCONFIG_DELIVERY = "immediate"
    started = time.perf_counter()
    for i in range(count):
        send_mail(f"Alert {i}", "Body", USER, [RECIPIENT])
    immediate = (time.perf_counter() - started) / count
    settings.MAILCONFIG_DELIVERY = "queued"
    return queued, immediate


def synchronous_rate(count: int) -> float:
    """Messages per second through the synchronous backend over one connection."""
    started = time.perf_counter()
    with get_connection(immediate=True) as connection:
        for i in range(count):
            send_mail(f"Alert {i}", "Body", USER, [RECIPIENT], connection=connection)
    return count / (time.perf_counter() - started)


def fill_queue(count: int) -> None:
    reset_outbox()
    with transaction.atomic():  # one commit for the rows; the tasks follow on commit
        for i in range(count):
            send_mail(f"Alert {i}", "Body", USER, [RECIPIENT])


def drain_rate(workers: int, count: int, env: dict[str, str], log_dir: str) -> float:
    """Messages per second while ``workers`` db_worker processes drain ``count`` messages."""
    fill_queue(count)
    run_workers(workers, env, os.path.join(log_dir, f"worker-{workers}"))
    sent = list(
        OutboxMessage.objects.filter(status=Status.SENT)
        .order_by("sent_at")
        .values_list("sent_at", flat=True)
    )
    if len(sent) != count:
        raise SystemExit(f"only {len(sent)} of {count} messages were sent (logs in {log_dir})")
    return _middle_rate(sent)


def run_workers(workers: int, env: dict[str, str], log: str) -> None:
    """Run ``workers`` db_worker processes until the queue is empty."""
    processes = []
    for index in range(workers):
        output = open(f"{log}-{index}.log", "w")  # noqa: SIM115
        processes.append(
            subprocess.Popen(
                [sys.executable, "manage.py", "db_worker", "--batch", "--no-startup-delay", "-v0"],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        )
    for process in processes:
        process.wait()


def engine_rate(count: int, env: dict[str, str], log_dir: str) -> float:
    """Tasks per second one worker runs when each task does nothing."""
    from tests.bench_tasks import nothing

    reset_outbox()
    with transaction.atomic():
        for i in range(count):
            nothing.enqueue(i)
    run_workers(1, env, os.path.join(log_dir, "engine"))
    finished = list(
        DBTaskResult.objects.filter(task_path=nothing.module_path)
        .exclude(finished_at=None)
        .order_by("finished_at")
        .values_list("finished_at", flat=True)
    )
    if len(finished) != count:
        raise SystemExit(f"only {len(finished)} of {count} tasks ran (logs in {log_dir})")
    return _middle_rate(finished)


def _middle_rate(times: list) -> float:
    # Between the 5th and the 95th percentile: worker start-up and the last stragglers
    # are not counted.
    count = len(times)
    low, high = times[int(count * 0.05)], times[int(count * 0.95) - 1]
    return (int(count * 0.95) - int(count * 0.05)) / (high - low).total_seconds()


def main() -> None:
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    count = int(
        sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BENCH_OUTBOX_MESSAGES", "10000")
    )
    call_command("migrate", verbosity=0)
    ca = trustme.CA()
    temp = tempfile.mkdtemp(prefix="bench-outbox-")
    ca_file = os.path.join(temp, "ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    settings.MAILCONFIG_CA_FILE = ca_file

    control, server, _ = start_smtp_server(ca)
    env = {**os.environ, "MAILCONFIG_CA_FILE": ca_file, "DATABASE_URL": BENCH_URL}

    print(f"\nOutbox on PostgreSQL ({BENCH_URL}), loopback SMTP (STARTTLS + AUTH):")
    queued, immediate = enqueue_cost(ENQUEUE_SAMPLE)
    print(f"  send_mail(), {ENQUEUE_SAMPLE} calls each:")
    print(f"    queued     {queued * 1000:7.2f} ms per message")
    print(f"    immediate  {immediate * 1000:7.2f} ms per message (a new connection per call)")

    sync = synchronous_rate(count)
    rates = {workers: drain_rate(workers, count, env, temp) for workers in WORKER_COUNTS}
    print(f"  {count} messages:")
    print(f"    synchronous backend, one connection: {sync:8.0f} msg/s")
    for workers, rate in rates.items():
        print(
            f"    {workers} worker(s): {rate:8.0f} msg/s"
            f"  ({rate / rates[1]:.2f}x one worker, {rate / sync:.2f}x synchronous)"
        )
    print(f"  worker overhead: one worker at {rates[1] / sync:.2f}x synchronous (target >= 0.7x)")
    engine = engine_rate(count, env, temp)
    ceiling = 1 / (1 / engine + 1 / sync)
    print(
        f"  engine floor: one worker runs {engine:.0f} empty tasks/s "
        f"({1000 / engine:.2f} ms per task); with one task per message a worker cannot "
        f"exceed {ceiling:.0f} msg/s ({ceiling / sync:.2f}x synchronous) on this machine"
    )
    ours = 1000 / rates[1] - 1000 / engine - 1000 / sync
    print(
        f"  one worker's {1000 / rates[1]:.2f} ms per message: engine {1000 / engine:.2f} ms, "
        f"sending {1000 / sync:.2f} ms, the outbox's own bookkeeping {ours:.2f} ms"
    )
    print(f"  (cores: {os.cpu_count()}; the SMTP server is one process on one of them)")
    control.send("done")
    control.recv()
    server.join(timeout=10)

    control, server, _ = start_smtp_server(ca, data_delay=SLOW_SERVER_DELAY)
    slow_sync = synchronous_rate(SLOW_SERVER_MESSAGES)
    slow_worker = drain_rate(1, SLOW_SERVER_MESSAGES, env, temp)
    print(
        f"  a server taking {SLOW_SERVER_DELAY * 1000:.0f} ms per message, "
        f"{SLOW_SERVER_MESSAGES} messages: synchronous {slow_sync:.1f} msg/s, one worker "
        f"{slow_worker:.1f} msg/s ({slow_worker / slow_sync:.2f}x synchronous)"
    )
    control.send("done")
    control.recv()
    server.join(timeout=10)
    reset_outbox()


if __name__ == "__main__":
    main()
