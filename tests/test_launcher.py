"""``make run`` starts the web server and a mail worker together, and stops both together."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.net import free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh data directory, migrated as ``make run`` does before starting."""
    path = tmp_path_factory.mktemp("run")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT, env=launcher_env(path, 0), check=True,
    )  # fmt: skip
    return path


def launcher_env(data_dir: Path, port: int) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mailconfig.settings",
        "MAILCONFIG_DATA_DIR": str(data_dir),
        "PORT": str(port),
    }
    env.pop("DATABASE_URL", None)  # make run uses the embedded SQLite database
    return env


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child that exited but was not yet reaped by anyone is a zombie: gone for our purpose.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_for(condition, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_one_signal_stops_the_web_server_and_the_worker(data_dir, signum):
    port = free_port()
    launcher = subprocess.Popen(
        [sys.executable, "scripts/serve.py"],
        cwd=ROOT, env=launcher_env(data_dir, port), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        started = [launcher.stdout.readline() for _ in range(2)]
        pids = [int(line.rsplit("pid ", 1)[1].rstrip(")\n")) for line in started]
        assert "web server" in started[0] and "mail worker" in started[1]
        assert wait_for(lambda: listening(port)), "the web server did not start"
        assert all(alive(pid) for pid in pids)

        launcher.send_signal(signum)
        assert launcher.wait(timeout=30) == 0
        assert wait_for(lambda: not any(alive(pid) for pid in pids), timeout=15)
        assert wait_for(lambda: not listening(port), timeout=15)
    finally:
        if launcher.poll() is None:
            launcher.kill()
