"""A read-only, locked or missing database: a page that says so, typed values kept, no 500.

SQLite and PostgreSQL (db_sensitive: run on both) fail differently; each test
makes the real fault happen on the database the suite runs on.
"""

import contextlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection, connections

from settings_app.models import AuditEntry, MailServerConfig
from tests.factories import PAGE_URL, smtp_basic_post

ROOT = Path(__file__).resolve().parent.parent
SECRET = "typed-secret-6d1f"

pytestmark = [pytest.mark.db_sensitive, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def config_row():
    MailServerConfig.ensure_row()  # transactional tests flush the migration's row


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    client.raise_request_exception = False
    return client


@contextlib.contextmanager
def read_only_database():
    """The database refuses writes and still answers reads."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA query_only = ON")
        else:
            cursor.execute("SET default_transaction_read_only = on")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute("PRAGMA query_only = OFF")
            else:
                cursor.execute("SET default_transaction_read_only = off")


@contextlib.contextmanager
def short_lock_wait():
    """The console waits for locks a fraction of a second instead of 20 s (SQLite) or forever."""
    if connection.vendor == "sqlite":
        options = connection.settings_dict["OPTIONS"]
        before = options.get("timeout")
        options["timeout"] = 0.3
        connection.close()  # reconnect with the shorter timeout
        try:
            yield
        finally:
            options["timeout"] = before
            connection.close()
    else:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")


@contextlib.contextmanager
def locked_by_another_process(exclusive: bool):
    """Another connection holds the write lock (SQLite) or the settings row (PostgreSQL).

    ``exclusive``: also readers must wait (SQLite EXCLUSIVE; PostgreSQL locks the sessions).
    """
    if connection.vendor == "sqlite":
        writer = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
        writer.execute("BEGIN EXCLUSIVE" if exclusive else "BEGIN IMMEDIATE")
        try:
            with short_lock_wait():
                yield
        finally:
            writer.rollback()
            writer.close()
    else:
        other = connections.create_connection("default")
        other.set_autocommit(False)
        with other.cursor() as cursor:
            if exclusive:
                cursor.execute("LOCK TABLE django_session IN ACCESS EXCLUSIVE MODE")
            else:
                cursor.execute("SELECT id FROM settings_app_mailserverconfig FOR UPDATE")
        try:
            with short_lock_wait():
                yield
        finally:
            other.rollback()
            other.close()


def typed_form() -> dict:
    return smtp_basic_post(server_name="typed.example.com", password=SECRET)


def assert_nothing_changed():
    assert MailServerConfig.load().version == 0
    assert not AuditEntry.objects.exists()


def test_a_read_only_database_keeps_the_typed_values_and_says_nothing_was_changed(admin_client):
    typed = typed_form()
    with read_only_database():
        response = admin_client.post(PAGE_URL, typed)
    body = response.content.decode()
    assert response.status_code == 503
    assert "The settings could not be stored." in body and "read-only" in body
    assert "Nothing was changed." in body
    assert 'value="typed.example.com"' in body  # the form comes back as typed
    assert SECRET not in body and "re-enter Password" in body  # secrets are never sent back
    assert_nothing_changed()


def test_a_locked_database_keeps_the_typed_values_and_says_it_is_locked(admin_client):
    typed = typed_form()
    with locked_by_another_process(exclusive=False):
        response = admin_client.post(PAGE_URL, typed)
    body = response.content.decode()
    assert response.status_code == 503
    assert "The settings could not be stored." in body and "The database is locked" in body
    assert 'value="typed.example.com"' in body and SECRET not in body
    assert_nothing_changed()


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="SQLite runs in WAL mode, where a writer's lock never blocks readers; "
    "run on PostgreSQL (make test does, for db_sensitive tests)",
)
def test_a_database_locked_even_for_reads_gets_a_page_saying_so(admin_client):
    # The reported case: the failure came in the access check, before the view.
    typed = typed_form()
    with locked_by_another_process(exclusive=True):
        response = admin_client.post(PAGE_URL, typed)
    body = response.content.decode()
    assert response.status_code == 503
    assert "The settings could not be stored" in body and "The database is locked" in body
    assert "Nothing was changed." in body and "Go back in your browser" in body
    assert SECRET not in body and "Traceback" not in body
    assert_nothing_changed()


@pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="about the SQLite file"
)
def test_a_missing_sqlite_file_is_an_error_page_not_a_new_empty_database(tmp_path):
    script = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "response = Client(raise_request_exception=False).post("
        "'/accounts/login/', {'username': 'admin', 'password': 'x'})\n"
        "print(response.status_code)\n"
        "print(response.content.decode())\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mailconfig.settings",
        "MAILCONFIG_DATA_DIR": str(tmp_path),
        "DJANGO_ALLOWED_HOSTS": "testserver",
    }
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    status, body = result.stdout.split("\n", 1)
    assert status == "503"
    assert "The database file is missing or cannot be opened" in body
    assert not (tmp_path / "db.sqlite3").exists()


@pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="about the SQLite file"
)
def test_migrate_creates_the_missing_sqlite_file(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mailconfig.settings"}
    env["MAILCONFIG_DATA_DIR"] = str(tmp_path)
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "db.sqlite3").stat().st_size > 0
