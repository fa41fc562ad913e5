"""``make bench``: our email backend measured side by side with raw smtplib and Django's stock
SMTP backend, and the API transports' token requests and TCP connections. Loopback only.

Run with ``python -m tests.bench [messages]``. Each SMTP contender sends the same number of
messages over one TLS + AUTH connection to the same aiosmtpd server; rounds alternate so
that machine noise hits every contender alike, and the best round of each is compared.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import ssl
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from email.message import EmailMessage as StdlibMessage

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

import trustme  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.mail import get_connection, send_mail  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

from settings_app.models import MailServerConfig  # noqa: E402
from tests.fakes.fixtures import point_settings_at  # noqa: E402
from tests.fakes.google import GoogleFake  # noqa: E402
from tests.fakes.microsoft import MicrosoftFake  # noqa: E402
from tests.servers.smtp_server import SmtpTestServer  # noqa: E402

USER, PASSWORD = "bench@example.com", "bench-password"
ROUNDS = 3
OURS = "settings_app.sender.backend.EmailBackend"
STOCK = "django.core.mail.backends.smtp.EmailBackend"


def store(**values: object) -> None:
    MailServerConfig.ensure_row()
    config = MailServerConfig.load()
    for name, value in values.items():
        setattr(config, name, value)
    config.version += 1
    config.updated_at = timezone.now()
    config.save()


def via_backend(backend: str, count: int, **options: object) -> None:
    with get_connection(backend, **options) as connection:
        for i in range(count):
            send_mail(f"Alert {i}", "Body", USER, ["ops@example.com"], connection=connection)


def via_raw_smtplib(server: SmtpTestServer, ca_file: str, count: int) -> None:
    with smtplib.SMTP("localhost", server.port, timeout=15) as smtp:
        smtp.starttls(context=ssl.create_default_context(cafile=ca_file))
        smtp.login(USER, PASSWORD)
        for i in range(count):
            message = StdlibMessage()
            message["Subject"], message["From"], message["To"] = (
                f"Alert {i}",
                USER,
                "ops@example.com",
            )
            message.set_content("Body")
            smtp.sendmail(USER, ["ops@example.com"], message.as_bytes())


def best_of(contenders: dict[str, Callable[[], None]]) -> dict[str, float]:
    best = {name: float("inf") for name in contenders}
    for _ in range(ROUNDS):
        for name, run in contenders.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def smtp_benchmark(ca: trustme.CA, ca_file: str, count: int) -> None:
    with SmtpTestServer(
        security="starttls", ca=ca, users={USER: PASSWORD}, keep_messages=False
    ) as server:
        store(
            mode="smtp",
            server_name="localhost",
            port=server.port,
            security="tls",
            auth="basic",
            username=USER,
            password=PASSWORD,
            from_address=USER,
        )
        stock_options = {
            "host": "localhost",
            "port": server.port,
            "username": USER,
            "password": PASSWORD,
            "use_tls": True,
        }
        # Django's stock backend verifies against the default store; point it at the test CA.
        os.environ["SSL_CERT_FILE"] = ca_file
        timings = best_of(
            {
                "raw smtplib": lambda: via_raw_smtplib(server, ca_file, count),
                "ours": lambda: via_backend(OURS, count),
                "Django stock SMTP": lambda: via_backend(STOCK, count, **stock_options),
            }
        )
        expected = count * ROUNDS * 3
        assert server.message_count == expected, (server.message_count, expected)
    print(f"SMTP, STARTTLS + AUTH, one connection, {count} messages (best of {ROUNDS} rounds):")
    for name, seconds in timings.items():
        print(f"  {name:<18} {seconds:7.3f} s  {count / seconds:8.0f} msg/s")
    print(
        f"  ours vs raw smtplib:        {timings['raw smtplib'] / timings['ours']:.2f}x (target >= 0.9x)"
    )
    print(
        f"  ours vs Django stock SMTP:  {timings['Django stock SMTP'] / timings['ours']:.2f}x (target >= 1.0x)"
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
    call_command("migrate", verbosity=0)
    ca = trustme.CA()
    ca_file = os.path.join(tempfile.mkdtemp(prefix="bench-ca-"), "ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    settings.MAILCONFIG_CA_FILE = ca_file
    smtp_benchmark(ca, ca_file, count)
    api_benchmark(ca, count)


if __name__ == "__main__":
    main()
