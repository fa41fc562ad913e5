"""Shared fixtures: a test certificate authority that every local TLS server uses, and the
outbox's (mail queued as in production, a local STARTTLS server stored as the Mail Server)."""

from pathlib import Path

import pytest
import trustme

pytest_plugins = [
    "tests.servers.smtp_server",
    "tests.servers.scripted_smtp",
    "tests.servers.webhook_receiver",
    "tests.servers.exchange_smtp",
    "tests.fakes.fixtures",
]


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    """One CA for the whole run: local SMTP and HTTPS servers get certificates from it."""
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(tls_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test CA's certificate as a PEM file, for MAILCONFIG_CA_FILE."""
    path: Path = tmp_path_factory.mktemp("ca") / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def trust_test_ca(settings, ca_file: str) -> str:
    """Make outbound TLS trust the test CA (what an operator does with MAILCONFIG_CA_FILE)."""
    settings.MAILCONFIG_CA_FILE = ca_file
    return ca_file


@pytest.fixture(autouse=True)
def fresh_error_report_throttle():
    """Each test starts with no error mail sent yet (the throttle's state outlives a test)."""
    from django.core.cache import caches

    caches["error_reports"].clear()


@pytest.fixture
def queued_backend(settings):
    """Mail goes through the outbox as in production (pytest-django's default is locmem),
    and no worker transport is kept open from one test's servers to the next."""
    from tests.outbox_helpers import forget_worker_connection

    settings.EMAIL_BACKEND = "sender.backend.EmailBackend"
    settings.MAILCONFIG_DELIVERY = "queued"
    forget_worker_connection()
    yield
    forget_worker_connection()


@pytest.fixture
def stored_smtp(smtp_starttls, trust_test_ca):
    """The local STARTTLS server saved as the Mail Server configuration (SMTP Basic), with
    the From Address "Alerts <alice@example.com>"; the server is returned."""
    from tests.factories import store_smtp

    store_smtp(smtp_starttls, from_address="Alerts <alice@example.com>")
    return smtp_starttls


@pytest.fixture
def plain_smtp(smtp_server_factory):
    """A plain SMTP server without authentication, saved as the Mail Server configuration
    (the worker-process tests: nothing to trust, nothing to sign in with)."""
    from tests.factories import store_plain_smtp

    server = smtp_server_factory(security="plain")
    store_plain_smtp(server)
    return server
