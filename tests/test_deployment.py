"""Deployment: a context path behind a reverse proxy, production checks, first admin account."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import set_script_prefix

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.django_db


def test_a_context_path_prefixes_links_and_static_files(admin_client, settings):
    settings.FORCE_SCRIPT_NAME = "/mailconsole"
    settings.STATIC_URL = "static/"  # resets the storage, which keeps the prefix it first saw
    # The WSGI handler sets the prefix from FORCE_SCRIPT_NAME per request; the test client does not.
    set_script_prefix("/mailconsole/")
    try:
        body = admin_client.get("/admin/general-settings/mail-server/").content.decode()
    finally:
        set_script_prefix("/")
    assert 'href="/mailconsole/admin/general-settings/mail-server/"' in body
    assert 'href="/mailconsole/static/vendor/bootstrap/bootstrap.min.css"' in body
    assert 'action="/mailconsole/accounts/logout/"' in body


def test_production_variables_pass_the_deploy_check(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mailconfig.settings",
        "MAILCONFIG_DATA_DIR": str(tmp_path),
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "k" * 20 + "production-secret-key-with-enough-entropy-0123456789",
        "DJANGO_ALLOWED_HOSTS": "mail.example.com",
        "DJANGO_HTTPS": "true",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set for Playwright in tests only
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_first_admin_is_created_once_with_the_given_password(monkeypatch, capsys):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "given-password-1")
    call_command("ensure_admin")
    user = get_user_model().objects.get()
    assert (
        user.username == "admin" and user.is_superuser and user.check_password("given-password-1")
    )
    call_command("ensure_admin")  # a second run changes nothing
    assert get_user_model().objects.count() == 1
    assert get_user_model().objects.get().check_password("given-password-1")


def test_first_admin_gets_a_random_password_printed_once(monkeypatch, capsys):
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)
    call_command("ensure_admin")
    out = capsys.readouterr().out
    password = next(line.split()[-1] for line in out.splitlines() if "Password" in line)
    assert get_user_model().objects.get(username="admin").check_password(password)
    call_command("ensure_admin")
    assert password not in capsys.readouterr().out
