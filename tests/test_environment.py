"""Every environment variable the settings read is typed and checked: a bad value stops
start-up with one line naming the variable, the value (hidden for a secret) and what is
allowed; a good one is read as it was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailconfig.environment import BadVariable, Environment
from tests.test_docs_reference import variables_read_by_settings

ROOT = Path(__file__).resolve().parent.parent

# One bad value per variable, and the words the refusal must contain. A secret's value
# must not be in the message.
BAD = {
    "MAILCONFIG_DATA_DIR": ("/proc/no-such-place/data", "a directory"),
    "DATABASE_URL": ("mongodb://admin:s3cret-pw@db/mail", "a database URL"),
    "DJANGO_CONN_MAX_AGE": ("-1", "a whole number of seconds from 0 to 86400"),
    "DJANGO_SECRET_KEY": ("short-s3cret", "at least 50 characters"),
    "DJANGO_DEBUG": ("maybe", "yes or no"),
    "DJANGO_ALLOWED_HOSTS": ("https://mail.example.com/", "a host name"),
    "DJANGO_CSRF_TRUSTED_ORIGINS": ("mail.example.com", "an origin"),
    "DJANGO_LOGIN_FAILURE_LIMIT": ("0", "a whole number of failed sign-ins from 1 to 1000"),
    "DJANGO_LOGIN_LOCKOUT_MINUTES": ("15m", "a whole number of minutes"),
    "DJANGO_TIME_ZONE": ("Mars/Olympus_Mons", "a time zone name"),
    "FORCE_SCRIPT_NAME": ("mailconsole", "a path starting with /"),
    "DJANGO_SESSION_AGE": ("8h", "a whole number of seconds from 60"),
    "DJANGO_TRUST_X_FORWARDED_PROTO": ("ture", "yes or no"),
    "DJANGO_TRUSTED_PROXIES": ("proxy.example.com", "an IP address or network"),
    "DJANGO_HSTS_SECONDS": ("1e9", "a whole number of seconds"),
    "DJANGO_HSTS_INCLUDE_SUBDOMAINS": ("si", "yes or no"),
    "DJANGO_HSTS_PRELOAD": ("2", "yes or no"),
    "DJANGO_HTTPS": ("ture", "yes or no: true, yes, on, 1 or false, no, off, 0"),
    "DJANGO_LOG_LEVEL": ("LOUD", "one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    "MAILCONFIG_DELIVERY": ("later", "one of queued, immediate"),
    "MAILCONFIG_RETRY_SCHEDULE": ("60,5m", "comma-separated numbers of seconds"),
    "MAILCONFIG_SEND_LEASE": ("300,5", "a number of seconds more than 0"),
    "MAILCONFIG_FAILOVER_AFTER": ("-5", "a number of seconds from 0"),
    "MAILCONFIG_ENCRYPTION_KEYS": ("not-a-fernet-key", "Fernet keys"),
    "MAILCONFIG_CA_FILE": ("/no/such/ca.pem", "the path of a readable file"),
    "MAILCONFIG_TIMEOUT": ("abc", "a number of seconds more than 0 and at most 3600"),
    "MAILCONFIG_SEND_TIMEOUT": ("0", "a number of seconds more than 0"),
    "MAILCONFIG_PUBLIC_URL": ("mail.example.com/console", "an http:// or https:// URL"),
    "MAILCONFIG_LOG_RETENTION_DAYS": ("two weeks", "a whole number of days from 0 to 36500"),
    "MAILCONFIG_FAILED_BODY_DAYS": ("nan", "a whole number of days"),
    "MAILCONFIG_ALERT_AFTER_TRANSIENT_FAILURES": ("0", "a whole number of failures"),
    "MAILCONFIG_ALERT_WEBHOOK_URL": ("ftp://hooks.example.com/", "an http:// or https:// URL"),
    "MAILCONFIG_ALERT_WEBHOOK_SECRET": ("tiny-s3cret", "at least 16 characters"),
    "MAILCONFIG_ALERT_WEBHOOK_TIMEOUT": ("inf", "a number of seconds more than 0"),
    "MAILCONFIG_ALERT_WEBHOOK_RETRY_SCHEDULE": ("30,-1", "comma-separated numbers of seconds"),
    "MAILCONFIG_METRICS_TOKEN": ("s3cret-but-short", "at least 24 characters"),
    "MAILCONFIG_DATA_TIMEOUT": ("10m", "a number of seconds more than 0 and at most 3600"),
    "DJANGO_LOGIN_ADDRESS_FAILURE_LIMIT": ("0", "a whole number of failed sign-ins from 1"),
    "MAILCONFIG_EHLO_NAME": ("mail server!", "a host name (mail.example.com) or an address"),
    "MAILCONFIG_BATCH_SIZE": ("0", "a whole number of messages from 1 to 10000"),
    "MAILCONFIG_WORKER_STALE_AFTER": ("2m", "a number of seconds more than 0"),
}
SECRETS = {
    "DATABASE_URL",
    "DJANGO_SECRET_KEY",
    "MAILCONFIG_ENCRYPTION_KEYS",
    "MAILCONFIG_ALERT_WEBHOOK_SECRET",
    "MAILCONFIG_METRICS_TOKEN",
}


def start(tmp_path: Path, command: list[str], **variables: str) -> subprocess.CompletedProcess:
    """Run ``command`` with the project's settings and ``variables`` (and none of the
    test run's own settings variables)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "MAILCONFIG_")) and name != "DATABASE_URL"
    }
    env |= {"DJANGO_SETTINGS_MODULE": "mailconfig.settings", "MAILCONFIG_DATA_DIR": str(tmp_path)}
    env |= variables
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_every_variable_the_settings_read_has_a_bad_value_here():
    assert set(BAD) == variables_read_by_settings()


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_value_stops_start_up_with_one_line(name, tmp_path):
    value, allowed = BAD[name]
    result = start(tmp_path, [sys.executable, "manage.py", "check"], **{name: value})
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # no traceback
    assert lines[0].startswith(f"{name}: ")
    assert allowed in lines[0]
    if name in SECRETS:
        assert "(hidden)" in lines[0]
        assert "s3cret" not in lines[0] and value not in lines[0]
    else:
        assert repr(value) in lines[0]


def test_django_setup_refuses_a_bad_value_with_the_same_message(tmp_path):
    code = "import django; django.setup()"
    result = start(tmp_path, [sys.executable, "-c", code], DJANGO_HTTPS="ture")
    assert result.returncode != 0
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("DJANGO_HTTPS: 'ture' is not yes or no: true, yes, on, 1 or false, no, off, 0.")
    )


def test_good_values_are_read_as_before(tmp_path):
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.MAILCONFIG_TIMEOUT, s.MAILCONFIG_SEND_LEASE, s.MAILCONFIG_RETRY_SCHEDULE, "
        "s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.TIME_ZONE, s.MAILCONFIG_DELIVERY, "
        "s.ALLOWED_HOSTS, s.FORCE_SCRIPT_NAME, s.DATABASES['default']['CONN_MAX_AGE'])"
    )
    result = start(
        tmp_path,
        [sys.executable, "-c", code],
        MAILCONFIG_TIMEOUT="2.5",
        MAILCONFIG_SEND_LEASE=" 120 ",
        MAILCONFIG_RETRY_SCHEDULE="60, 300,,900",
        DJANGO_HTTPS="Yes",
        DJANGO_HSTS_SECONDS="600",
        DJANGO_TIME_ZONE="Europe/Berlin",
        MAILCONFIG_DELIVERY="IMMEDIATE",
        DJANGO_ALLOWED_HOSTS="mail.example.com, .example.com",
        FORCE_SCRIPT_NAME="/mailconsole",
        DJANGO_CONN_MAX_AGE="60",
    )
    assert result.stdout.split() == [
        "2.5",
        "120.0",
        "[60.0,",
        "300.0,",
        "900.0]",
        "True",
        "600",
        "Europe/Berlin",
        "immediate",
        "['mail.example.com',",
        "'.example.com']",
        "/mailconsole",
        "60",
    ], result.stderr


def test_empty_values_mean_the_defaults(tmp_path):
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.MAILCONFIG_TIMEOUT, s.DEBUG, s.MAILCONFIG_PUBLIC_URL, s.SESSION_COOKIE_AGE)"
    )
    result = start(
        tmp_path,
        [sys.executable, "-c", code],
        MAILCONFIG_TIMEOUT="",
        DJANGO_DEBUG=" ",
        MAILCONFIG_PUBLIC_URL="",
        DJANGO_SESSION_AGE="",
    )
    assert result.stdout.split() == ["15.0", "False", "None", "28800"], result.stderr


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("sqlite://:memory:", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
        ("postgresql://postgres@127.0.0.1:5432/mail", "mail"),
    ],
)
def test_database_urls_are_read_as_dj_database_url_read_them(url, name):
    config = Environment({"DATABASE_URL": url}).database("DATABASE_URL", "", conn_max_age=0)
    assert config["NAME"] == name
    assert config["CONN_MAX_AGE"] == 0


def test_the_default_database_is_the_sqlite_file_in_the_data_dir_opened_read_write(tmp_path):
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.DATABASES['default']['NAME'])"
    )
    result = start(tmp_path, [sys.executable, "-c", code])
    engine, name = result.stdout.split()
    assert engine == "django.db.backends.sqlite3", result.stderr
    assert name == (tmp_path / "db.sqlite3").resolve().as_uri() + "?mode=rw"


def test_a_secret_is_never_in_the_message():
    with pytest.raises(BadVariable) as refused:
        Environment({"DJANGO_SECRET_KEY": "hunter2"}).text(
            "DJANGO_SECRET_KEY", min_length=50, secret=True
        )
    assert "hunter2" not in str(refused.value)
    assert str(refused.value) == "DJANGO_SECRET_KEY: (hidden) is not at least 50 characters."


def test_a_retry_schedule_set_but_empty_means_no_retries():
    assert (
        Environment({"MAILCONFIG_RETRY_SCHEDULE": ""}).seconds_list(
            "MAILCONFIG_RETRY_SCHEDULE", "60,300", maximum=10**7
        )
        == []
    )
    assert Environment({}).seconds_list("MAILCONFIG_RETRY_SCHEDULE", "60,300", maximum=10**7) == [
        60.0,
        300.0,
    ]


def test_make_run_refuses_a_bad_web_concurrency_in_one_line(tmp_path):
    # gunicorn itself would stop with a ValueError traceback; serve.py refuses it first.
    result = start(tmp_path, [sys.executable, "scripts/serve.py"], WEB_CONCURRENCY="two")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].endswith(
        "WEB_CONCURRENCY: 'two' is not a whole number of web server processes from 1 to 1000."
    )
