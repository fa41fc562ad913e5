"""The outbox's benchmark (run by ``make bench`` after tests/bench.py, or on its own with
``python -m tests.bench_outbox [messages]``). Every figure of the outbox's targets, side by
side, from one run, on PostgreSQL (``BENCH_DATABASE_URL``, default
``postgresql://postgres@127.0.0.1:5432/mailconfig_bench``, created if missing):

- worker vs wire: one ``manage.py db_worker`` process draining N queued messages (default
  10,000; ``BENCH_OUTBOX_MESSAGES`` or the argument) to one loopback SMTP server
  (STARTTLS + AUTH, its own process), against the synchronous backend sending the same N
  over one connection (target >= 0.7x);
- the same against a server taking ``SLOW_SERVER_DELAY`` before each 250
  (``BENCH_SLOW_MESSAGES``, default 200; target >= 0.95x);
- 1, 2 and 4 workers on the same backlog: the scaling;
- enqueue: queued ``send_mail()`` per call (target <= 1 ms), and N messages in one
  ``send_messages()``;
- commit-to-250 latency of a message queued while one worker is idle (the time from the
  caller's commit to the server's 250, which the attempt row records), p50 and p95
  (``BENCH_LATENCY_SAMPLES``, default 30);
- the one-worker ratio on SQLite, the default ``make run`` uses (``BENCH_SQLITE_MESSAGES``,
  default 2,000; a separate process with ``--sqlite``).

Drain rates are taken between the 5th and the 95th percentile of the times the server
answered 250 (from the attempt rows), so worker start-up (importing Django) is not counted.
"""

from __future__ import annotations

import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from functools import partial
from pathlib import Path
from urllib.parse import urlparse

SQLITE_RUN = "--sqlite" in sys.argv
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


if not BENCH_URL.startswith("sqlite"):
    try:
        ensure_database(BENCH_URL)
    except Exception as error:  # psycopg.OperationalError: no server there
        print(f"\nOutbox benchmark skipped: PostgreSQL not reachable at {BENCH_URL} ({error}).")
        sys.exit(0)

import django  # noqa: E402

django.setup()

import trustme  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.mail import EmailMessage, get_connection, send_mail  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from sender.models import Attempt, OutboxMessage, Status  # noqa: E402
from tests.bench import RECIPIENT, USER, start_smtp_server  # noqa: E402

WORKER_COUNTS = (1, 2, 4)
SLOW_SERVER_DELAY = 0.05  # seconds before the server's 250 to each message
ENQUEUE_SAMPLE = 200
IMMEDIATE_SAMPLE = 50


def env_count(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def reset_outbox() -> None:
    """Empty the outbox and the task table (TRUNCATE on PostgreSQL: no dead rows left for
    the next measurement to wade through)."""
    from django_tasks_db.models import DBTaskResult

    if connection.vendor == "postgresql":
        tables = (model._meta.db_table for model in (Attempt, OutboxMessage, DBTaskResult))
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {', '.join(tables)}")
        return
    for model in (Attempt, OutboxMessage, DBTaskResult):
        model.objects.all().delete()


def message_list(count: int) -> list[EmailMessage]:
    return [EmailMessage(f"Alert {i}", "Body", USER, [RECIPIENT]) for i in range(count)]


def enqueue_cost(count: int) -> tuple[float, float, float]:
    """Seconds per send_mail() (queued, immediate) and for ``count`` messages in one
    send_messages()."""
    reset_outbox()
    settings.MAILCONFIG_DELIVERY = "queued"
    send_mail("warm-up", "Body", USER, [RECIPIENT])
    started = time.perf_counter()
    for i in range(ENQUEUE_SAMPLE):
        send_mail(f"Alert {i}", "Body", USER, [RECIPIENT])
    queued = (time.perf_counter() - started) / ENQUEUE_SAMPLE
    messages = message_list(count)
    started = time.perf_counter()
    get_connection().send_messages(messages)
    many = time.perf_counter() - started
    settings.MAILCONFIG_DELIVERY = "immediate"
    started = time.perf_counter()
    for i in range(IMMEDIATE_SAMPLE):
        send_mail(f"Alert {i}", "Body", USER, [RECIPIENT])
    immediate = (time.perf_counter() - started) / IMMEDIATE_SAMPLE
    settings.MAILCONFIG_DELIVERY = "queued"
    reset_outbox()
    return queued, immediate, many


def synchronous_rate(count: int) -> float:
    """Messages per second through the synchronous backend over one connection."""
    started = time.perf_counter()
    with get_connection(immediate=True) as backend:
        for i in range(count):
            send_mail(f"Alert {i}", "Body", USER, [RECIPIENT], connection=backend)
    return count / (time.perf_counter() - started)


def fill_queue(count: int) -> None:
    reset_outbox()
    get_connection().send_messages(message_list(count))  # one INSERT, one wake-up


def drain_rate(workers: int, count: int, env: dict[str, str], log_dir: str) -> float:
    """Messages per second while ``workers`` db_worker processes drain ``count`` messages."""
    fill_queue(count)
    processes = start_workers(workers, env, os.path.join(log_dir, f"worker-{workers}"))
    try:
        deadline = time.monotonic() + 120 + count / 5  # generous: a loaded machine
        while OutboxMessage.objects.exclude(status=Status.SENT).exists():
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                break
            time.sleep(0.2)
    finally:
        stop_workers(processes)
    sent = OutboxMessage.objects.filter(status=Status.SENT).count()
    if sent != count:
        raise SystemExit(f"only {sent} of {count} messages were sent (logs in {log_dir})")
    # When each server said 250 (sent_at is when the outcome was recorded, a batch at once).
    answered = sorted(
        started + timedelta(milliseconds=ms)
        for started, ms in Attempt.objects.values_list("started_at", "duration_ms")
    )
    return _middle_rate(answered)


def start_workers(workers: int, env: dict[str, str], log: str) -> list[subprocess.Popen]:
    processes = []
    for index in range(workers):
        output = open(f"{log}-{index}.log", "w")  # noqa: SIM115
        processes.append(
            subprocess.Popen(
                [sys.executable, "manage.py", "db_worker", "--no-startup-delay", "-v0"],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        )
    return processes


def stop_workers(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()  # SIGTERM: a graceful stop
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def commit_to_250(samples: int, env: dict[str, str], log_dir: str) -> list[float]:
    """Seconds from each message's commit to the server's 250, one message at a time
    queued at random moments while one worker (polling every second, the default) idles."""
    reset_outbox()
    (worker,) = start_workers(1, env, os.path.join(log_dir, "latency"))
    committed: dict[str, float] = {}
    try:
        time.sleep(3)  # the worker has started and done its start-up work
        for i in range(samples):
            time.sleep(random.uniform(0.3, 1.2))
            with transaction.atomic():
                subject = f"Latency {i}"
                transaction.on_commit(partial(stamp, committed, subject))
                send_mail(subject, "Body", USER, [RECIPIENT])
        deadline = time.monotonic() + 60
        while OutboxMessage.objects.exclude(status=Status.SENT).exists():
            if time.monotonic() > deadline:
                raise SystemExit(f"latency messages not all sent (logs in {log_dir})")
            time.sleep(0.2)
    finally:
        stop_workers([worker])
    latencies = []
    for subject, started_at, ms in Attempt.objects.values_list(
        "message__subject", "started_at", "duration_ms"
    ):
        answered = (started_at + timedelta(milliseconds=ms)).timestamp()
        latencies.append(answered - committed[subject])
    return sorted(latencies)


def stamp(committed: dict[str, float], subject: str) -> None:
    committed[subject] = time.time()


def _middle_rate(times: list) -> float:
    # Between the 5th and the 95th percentile: worker start-up and the last stragglers
    # are not counted.
    count = len(times)
    low, high = times[int(count * 0.05)], times[int(count * 0.95) - 1]
    return (int(count * 0.95) - int(count * 0.05)) / max((high - low).total_seconds(), 1e-6)


def percentile(values: list[float], fraction: float) -> float:
    return values[min(len(values) - 1, int(len(values) * fraction))]


def setup() -> tuple[trustme.CA, str, dict[str, str]]:
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    call_command("migrate", verbosity=0)
    ca = trustme.CA()
    temp = tempfile.mkdtemp(prefix="bench-outbox-")
    ca_file = os.path.join(temp, "ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    settings.MAILCONFIG_CA_FILE = ca_file
    env = {**os.environ, "MAILCONFIG_CA_FILE": ca_file, "DATABASE_URL": BENCH_URL}
    return ca, temp, env


def stop_server(control, server) -> None:
    control.send("done")
    control.recv()
    server.join(timeout=10)


def one_worker_ratio(count: int) -> tuple[float, float]:
    """(synchronous, one worker) msg/s for ``count`` messages on this database."""
    ca, temp, env = setup()
    control, server, _ = start_smtp_server(ca)
    try:
        return synchronous_rate(count), drain_rate(1, count, env, temp)
    finally:
        stop_server(control, server)
        reset_outbox()


def sqlite_ratio(count: int) -> tuple[float, float] | None:
    """The one-worker ratio on a SQLite file (another process: one database per process)."""
    path = os.path.join(tempfile.mkdtemp(prefix="bench-sqlite-"), "bench.sqlite3")
    result = subprocess.run(
        [sys.executable, "-m", "tests.bench_outbox", "--sqlite", str(count)],
        cwd=ROOT,
        env={**os.environ, "BENCH_DATABASE_URL": f"sqlite:///{path}"},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        print(f"  SQLite run failed: {result.stdout[-500:]}{result.stderr[-2000:]}")
        return None
    sync, worker = (float(x) for x in result.stdout.strip().splitlines()[-1].split())
    return sync, worker


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if SQLITE_RUN:
        sync, worker = one_worker_ratio(int(args[0]))
        print(f"{sync} {worker}")
        return
    count = int(args[0]) if args else env_count("BENCH_OUTBOX_MESSAGES", 10000)
    slow_count = env_count("BENCH_SLOW_MESSAGES", 200)
    samples = env_count("BENCH_LATENCY_SAMPLES", 30)
    sqlite_count = env_count("BENCH_SQLITE_MESSAGES", 2000)
    batch = settings.MAILCONFIG_BATCH_SIZE
    ca, temp, env = setup()
    print(
        f"\nOutbox on PostgreSQL ({BENCH_URL}), loopback SMTP (STARTTLS + AUTH), "
        f"batches of {batch}, {os.cpu_count()} cores:"
    )
    control, server, _ = start_smtp_server(ca)
    queued, immediate, many = enqueue_cost(count)
    sync = synchronous_rate(count)
    rates = {workers: drain_rate(workers, count, env, temp) for workers in WORKER_COUNTS}
    stop_server(control, server)

    control, server, _ = start_smtp_server(ca, data_delay=SLOW_SERVER_DELAY)
    slow_sync = synchronous_rate(slow_count)
    slow_worker = drain_rate(1, slow_count, env, temp)
    stop_server(control, server)

    control, server, _ = start_smtp_server(ca)
    latencies = commit_to_250(samples, env, temp)
    stop_server(control, server)
    reset_outbox()

    sqlite = sqlite_ratio(sqlite_count)

    print(f"  one worker vs synchronous, {count} messages: {rates[1]:.0f} vs {sync:.0f} msg/s")
    print(f"    = {rates[1] / sync:.2f}x (target >= 0.7x)")
    print(
        f"  server taking {SLOW_SERVER_DELAY * 1000:.0f} ms per message, {slow_count} messages: "
        f"{slow_worker:.1f} vs {slow_sync:.1f} msg/s"
    )
    print(f"    = {slow_worker / slow_sync:.2f}x (target >= 0.95x)")
    for workers, rate in rates.items():
        print(
            f"  {workers} worker(s): {rate:7.0f} msg/s ({rate / rates[1]:.2f}x one worker, "
            f"{rate / sync:.2f}x synchronous)"
        )
    print(
        f"  enqueue: queued send_mail() {queued * 1000:.2f} ms per call (target <= 1 ms); "
        f"immediate {immediate * 1000:.1f} ms (a new connection per call); "
        f"{count} messages in one send_messages() {many:.2f} s ({many / count * 1000:.3f} ms each)"
    )
    print(
        f"  commit to 250, idle worker, {samples} messages: p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p95 {percentile(latencies, 0.95) * 1000:.0f} ms"
    )
    if sqlite is not None:
        print(
            f"  SQLite, one worker vs synchronous, {sqlite_count} messages: "
            f"{sqlite[1]:.0f} vs {sqlite[0]:.0f} msg/s = {sqlite[1] / sqlite[0]:.2f}x"
        )
    print(
        f"  (the SMTP server is one process; with {os.cpu_count()} cores the workers, the "
        "server and PostgreSQL share them: scaling stops where the cores run out)"
    )


if __name__ == "__main__":
    main()
