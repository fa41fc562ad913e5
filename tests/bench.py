"""``make bench``: our email backend measured side by side with raw smtplib and Django's stock
SMTP backend, and the API transports' token requests and TCP connections. Loopback only.

Run with ``python -m tests.bench [messages]``. The SMTP contenders send the same messages
(subject, body and headers built by Django's ``EmailMultiAlternatives``, as ``send_mail()``
builds them) to the same aiosmtpd server, over one STARTTLS + AUTH PLAIN connection each:

- raw smtplib: for each message, the bytes built as ``send_mail()`` builds them, handed to
  ``smtplib.SMTP.sendmail()``: the same work with no backend around it (the 0.9x target).
- raw, prebuilt: ``sendmail()`` of those bytes built before the clock starts: the SMTP
  exchange alone, a floor no backend can reach (for reference).
- ours: ``send_mail()`` through ``sender.backend.EmailBackend``.
- Django stock SMTP: ``send_mail()`` through ``django.core.mail.backends.smtp.EmailBackend``.

The server runs in its own process: in this one it would compete with the contender for
the GIL, and the timings would measure the interpreter's thread switching as much as the
senders. Rounds interleave the contenders (one batch each per round) so that machine noise
hits them alike; each contender's best round counts. Elapsed time is what the targets are
about; the sender's CPU time (this process only) is printed too, being far less sensitive
to other load on the machine.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

import trustme  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.mail import EmailMultiAlternatives, get_connection, send_mail  # noqa: E402
from django.core.management import call_command  # noqa: E402

from tests.factories import store  # noqa: E402
from tests.fakes.fixtures import point_settings_at  # noqa: E402
from tests.fakes.google import GoogleFake  # noqa: E402
from tests.fakes.microsoft import MicrosoftFake  # noqa: E402
from tests.servers.smtp_server import SmtpTestServer  # noqa: E402

USER, PASSWORD = "bench@example.com", "bench-password"
RECIPIENT = "ops@example.com"
ROUNDS = 9
OURS = "sender.backend.EmailBackend"
STOCK = "django.core.mail.backends.smtp.EmailBackend"


def via_backend(backend: str, count: int, **options: Any) -> None:
    with get_connection(backend, **options) as connection:
        for i in range(count):
            send_mail(f"Alert {i}", "Body", USER, [RECIPIENT], connection=connection)


def django_message(i: int) -> bytes:
    """One message's bytes, built as ``send_mail()`` and the backends build them."""
    message = EmailMultiAlternatives(f"Alert {i}", "Body", USER, [RECIPIENT])
    return message.message().as_bytes(linesep="\r\n")


def via_raw_smtplib(port: int, ca_file: str, count: int, prebuilt: list[bytes] | None) -> None:
    with smtplib.SMTP("localhost", port, timeout=15) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=ca_file))
        smtp.login(USER, PASSWORD)
        for i in range(count):
            data = prebuilt[i] if prebuilt is not None else django_message(i)
            smtp.sendmail(USER, [RECIPIENT], data)


def best_of(contenders: dict[str, Callable[[], None]]) -> dict[str, tuple[float, float]]:
    """Each contender's best (elapsed, CPU) seconds over ROUNDS interleaved rounds."""
    best = {name: (float("inf"), float("inf")) for name in contenders}
    for _ in range(ROUNDS):
        for name, run in contenders.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            run()
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            best[name] = (min(best[name][0], elapsed), min(best[name][1], cpu))
    return best


def serve_smtp(ca: trustme.CA, control: Connection, data_delay: float = 0.0) -> None:
    """The benchmark's SMTP server, in a process of its own: sends its port, waits, reports.

    ``data_delay``: seconds before it answers each message's data, like a real server
    that scans and stores the message before it says 250."""
    # aiosmtpd logs every command, and a deprecation *log* warning on every AUTH it handles.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    with SmtpTestServer(
        security="starttls", ca=ca, users={USER: PASSWORD}, keep_messages=False
    ) as server:
        if data_delay:
            server.injections.delays["DATA"] = data_delay
        control.send(server.port)
        control.recv()  # the benchmark is done
        control.send(server.message_count)


def start_smtp_server(
    ca: trustme.CA, data_delay: float = 0.0
) -> tuple[Connection, BaseProcess, int]:
    """Start the benchmark's SMTP server in its own process and save it as the primary
    connection (STARTTLS + Basic); the pipe to stop it, the process and its port."""
    context = multiprocessing.get_context("fork")
    control, server_end = context.Pipe()
    server = context.Process(target=serve_smtp, args=(ca, server_end, data_delay), daemon=True)
    server.start()
    port = control.recv()
    store(
        mode="smtp",
        server_name="localhost",
        port=port,
        security="tls",
        auth="basic",
        username=USER,
        password=PASSWORD,
        from_address=USER,
    )
    return control, server, port


def smtp_benchmark(ca: trustme.CA, ca_file: str, count: int) -> None:
    control, server, port = start_smtp_server(ca)
    stock_options = {
        "host": "localhost",
        "port": port,
        "username": USER,
        "password": PASSWORD,
        "use_tls": True,
    }
    # Django's stock backend verifies against the default store; point it at the test CA.
    os.environ["SSL_CERT_FILE"] = ca_file
    prebuilt = [django_message(i) for i in range(count)]
    timings = best_of(
        {
            "raw smtplib": lambda: via_raw_smtplib(port, ca_file, count, None),
            "raw, prebuilt": lambda: via_raw_smtplib(port, ca_file, count, prebuilt),
            "ours": lambda: via_backend(OURS, count),
            "Django stock SMTP": lambda: via_backend(STOCK, count, **stock_options),
        }
    )
    control.send("done")
    received = control.recv()
    server.join(timeout=10)
    expected = count * ROUNDS * len(timings)
    assert received == expected, (received, expected)
    print(f"SMTP, STARTTLS + AUTH, one connection, {count} messages (best of {ROUNDS} rounds):")
    for name, (seconds, cpu) in timings.items():
        print(f"  {name:<18} {seconds:7.3f} s  {count / seconds:8.0f} msg/s   CPU {cpu:6.3f} s")

    def ratio(other: str, index: int) -> str:
        return f"{timings[other][index] / timings['ours'][index]:.2f}x"

    for other, label, target in (
        ("raw smtplib", "raw smtplib", "target >= 0.9x"),
        ("raw, prebuilt", "raw, prebuilt", "reference: message building not counted there"),
        ("Django stock SMTP", "Django stock SMTP", "target >= 1.0x"),
    ):
        print(
            f"  ours vs {label + ':':<19} {ratio(other, 0)} elapsed, {ratio(other, 1)} CPU ({target})"
        )


def api_benchmark(ca: trustme.CA, count: int) -> None:
    with MicrosoftFake(ca) as microsoft, GoogleFake(ca) as google:
        point_settings_at(settings, microsoft, google)
        microsoft.add_app("bench-tenant", "bench-client", "bench-secret", domain="bench.example")
        store(
            mode="api",
            api_provider="microsoft",
            api_tenant_id="bench-tenant",
            api_client_id="bench-client",
            api_client_secret="bench-secret",
            from_address="mailer@bench.example",
        )
        started = time.perf_counter()
        for i in range(count):  # a new backend per call, as send_mail() does by default
            send_mail(f"Alert {i}", "Body", None, ["ops@example.com"])
        graph_seconds = time.perf_counter() - started
        assert len(microsoft.sent) == count

        key = google.make_service_account()
        google.delegate(key["client_id"])
        google.add_user("mailer@bench.example")
        store(api_provider="google", service_account_key=json.dumps(key))
        started = time.perf_counter()
        for i in range(count):
            send_mail(f"Alert {i}", "Body", None, ["ops@example.com"])
        gmail_seconds = time.perf_counter() - started
        assert len(google.sent) == count
    print(f"\nAPI mode, {count} send_mail() calls each (a new backend per call):")
    print(
        f"  Microsoft Graph: {graph_seconds:6.2f} s, token requests {microsoft.tokens_issued['client_credentials']} "
        f"(target 1), TCP connections {microsoft.connections} (target <= 4)"
    )
    print(
        f"  Gmail API:       {gmail_seconds:6.2f} s, token requests {google.tokens_issued['jwt_bearer']} "
        f"(target 1), TCP connections {google.connections} (target <= 4)"
    )


def main() -> None:
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command
    warnings.filterwarnings("ignore", message="Session.login_data")  # aiosmtpd's own notice
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    # These contenders send within send_mail(); the outbox has its own benchmark (below).
    settings.MAILCONFIG_DELIVERY = "immediate"
    call_command("migrate", verbosity=0)
    ca = trustme.CA()
    ca_file = os.path.join(tempfile.mkdtemp(prefix="bench-ca-"), "ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    settings.MAILCONFIG_CA_FILE = ca_file
    smtp_benchmark(ca, ca_file, count)
    api_benchmark(ca, count)
    # Their own processes: they run on PostgreSQL (BENCH_DATABASE_URL), this one on SQLite.
    subprocess.run([sys.executable, "-m", "tests.bench_outbox"], check=True)
    subprocess.run([sys.executable, "-m", "tests.bench_email_log"], check=True)


if __name__ == "__main__":
    main()
