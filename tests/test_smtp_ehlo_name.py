"""The name the SMTP transport gives in EHLO: configured, or looked up once per process.

smtplib, left to itself, calls ``socket.getfqdn()`` for every connection: a DNS lookup
outside every time limit, which takes seconds where reverse DNS is broken.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mailconfig.environment import is_ehlo_name
from tests.test_smtp_transport import send, smtp_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fqdn_lookups(monkeypatch) -> list[str]:
    """Every ``socket.getfqdn()`` call from now on (each answers as the real one would)."""
    calls: list[str] = []
    real = socket.getfqdn

    def counted(name: str = "") -> str:
        calls.append(name)
        return real(name)

    monkeypatch.setattr(socket, "getfqdn", counted)
    return calls


def test_the_server_sees_the_configured_ehlo_name(smtp_starttls, settings, trust_test_ca):
    settings.MAILCONFIG_EHLO_NAME = "mailer.example.test"
    send(smtp_config(smtp_starttls))
    # Once before STARTTLS and once after, as RFC 3207 wants.
    assert smtp_starttls.ehlo_names == ["mailer.example.test", "mailer.example.test"]


def test_a_configured_name_needs_no_lookup(smtp_plain, settings, fqdn_lookups):
    settings.MAILCONFIG_EHLO_NAME = "[192.0.2.25]"
    for _ in range(3):
        send(smtp_config(smtp_plain))
    assert smtp_plain.ehlo_names == ["[192.0.2.25]"] * 3
    assert fqdn_lookups == []


def test_without_a_configured_name_the_lookup_is_made_once_per_process(
    smtp_plain, settings, fqdn_lookups
):
    settings.MAILCONFIG_EHLO_NAME = None
    for _ in range(3):
        send(smtp_config(smtp_plain))
    assert len(fqdn_lookups) <= 1  # none when an earlier connection already looked it up
    assert len(smtp_plain.ehlo_names) == 3 and len(set(smtp_plain.ehlo_names)) == 1


@pytest.mark.parametrize(
    "name",
    ["mail.example.com", "mail", "mail-01.example.com.", "[192.0.2.1]", "[IPv6:2001:db8::1]"],
)
def test_host_names_and_address_literals_are_valid_ehlo_names(name):
    assert is_ehlo_name(name)


@pytest.mark.parametrize(
    "name",
    ["mail example.com", "-mail.example.com", "mail..example.com", "[192.0.2.999]", "192.0.2.1]",
     "[IPv6:2001:db8::zz]", "mail.example.com\r\nRCPT TO:<x@y>", "mäil.example.com", "a" * 64],
)  # fmt: skip
def test_other_ehlo_names_are_refused(name):
    assert not is_ehlo_name(name)


def test_an_invalid_ehlo_name_stops_the_start_with_a_clear_error(tmp_path):
    env = {**os.environ, "MAILCONFIG_DATA_DIR": str(tmp_path), "MAILCONFIG_EHLO_NAME": "not valid"}
    env["DJANGO_SETTINGS_MODULE"] = "mailconfig.settings"
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "MAILCONFIG_EHLO_NAME must be a host name" in result.stderr
