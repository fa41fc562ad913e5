"""``/healthz`` and ``/readyz``: what a load balancer or an orchestrator asks, without
sign-in, revealing nothing, and answered for a probe addressed to the server's IP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from tests.net import free_port

ROOT = Path(__file__).resolve().parent.parent
POD_IP = "10.1.2.3:8000"  # what a Kubernetes probe sends as Host

pytestmark = pytest.mark.django_db


@pytest.fixture
def production(settings):
    """DJANGO_HTTPS=true and a real host name, as deployed behind a TLS proxy."""
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["mail.example.com"]


def test_healthz_answers_without_sign_in(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok\n"
    assert response["Content-Type"].startswith("text/plain")
    assert response["Cache-Control"] == "no-store"
    assert not response.cookies


def test_readyz_is_ready_when_the_database_answers_and_every_migration_is_applied(client):
    response = client.get("/readyz")
    assert (response.status_code, response.content) == (200, b"ready\n")


def test_readyz_names_migrations_when_one_is_not_applied(client):
    last = MigrationRecorder(connection).applied_migrations()
    app, name = max(key for key in last if key[0] == "sender")
    MigrationRecorder(connection).record_unapplied(app, name)  # rolled back after the test
    response = client.get("/readyz")
    assert (response.status_code, response.content) == (503, b"migrations\n")


def test_probes_answer_plain_http_for_the_pods_address(client, production):
    for path, body in (("/healthz", b"ok\n"), ("/readyz", b"ready\n")):
        response = client.get(path, HTTP_HOST=POD_IP)
        assert (response.status_code, response.content) == (200, body), path
        assert "Strict-Transport-Security" not in response


def test_the_exemption_covers_only_the_probes(client, production):
    # The same request to any other path is still refused for its Host ...
    assert client.get("/accounts/login/", HTTP_HOST=POD_IP).status_code == 400
    assert client.get("/healthz/", HTTP_HOST=POD_IP).status_code == 400
    # ... and from an allowed host, still redirected to HTTPS.
    response = client.get("/accounts/login/", HTTP_HOST="mail.example.com")
    assert response.status_code == 301
    assert response["Location"].startswith("https://mail.example.com/")
    # Only GET and HEAD are answered early; a POST goes through the whole stack.
    assert client.post("/healthz", HTTP_HOST=POD_IP).status_code == 400


def test_head_answers_with_the_status_and_no_body(client):
    response = client.head("/readyz")
    assert response.status_code == 200
    assert response.content == b""


# --- A real server ----------------------------------------------------------------


def serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--timeout", "30", "mailconfig.wsgi"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def fetch(port: int, path: str, host: str = POD_IP) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_until_serving(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
        try:
            fetch(port, "/healthz")
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("gunicorn did not start")


def test_a_server_without_its_database_is_alive_but_not_ready(tmp_path):
    """The production layout: gunicorn, HTTPS on, a real host name; the SQLite file is gone."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mailconfig.settings",
        "MAILCONFIG_DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'missing.sqlite3'}",
        "DJANGO_HTTPS": "true",
        "DJANGO_ALLOWED_HOSTS": "mail.example.com",
        "DJANGO_SECRET_KEY": "probe-test-" + "k" * 50,
    }
    server = serve(env, port)
    try:
        wait_until_serving(port, server)
        assert fetch(port, "/healthz") == (200, b"ok\n")
        assert fetch(port, "/readyz") == (503, b"database\n")
        assert fetch(port, "/accounts/login/")[0] == 400  # the pod's IP elsewhere: refused
    finally:
        server.terminate()
        server.wait(timeout=30)
