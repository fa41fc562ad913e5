"""``make run`` as a service (``scripts/serve.py``), tried with real processes: gunicorn
serves, a dead worker comes back with backoff and delivers the queued mail, the web
server's death stops everything with a non-zero status, and a signal stops everything
gracefully, letting a worker finish the message it is sending."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.net import free_port
from tests.servers.smtp_server import SmtpTestServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import serve  # noqa: E402  (scripts/ is not a package)


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory migrated as ``make run`` does first; each test gets a copy."""
    path = tmp_path_factory.mktemp("migrated")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT, env=service_env(path), check=True,
    )  # fmt: skip
    return path


@pytest.fixture
def data_dir(migrated: Path, tmp_path: Path) -> Path:
    path = tmp_path / "data"
    shutil.copytree(migrated, path)
    return path


def service_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mailconfig.settings",
        "MAILCONFIG_DATA_DIR": str(data_dir),
        **extra,
    }
    env.pop("DATABASE_URL", None)  # make run uses the embedded SQLite database
    return env


def manage(data_dir: Path, *arguments: str) -> str:
    """Run a ``manage.py`` command against the service's database, as an operator would."""
    result = subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT, env=service_env(data_dir), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def use_smtp_server(data_dir: Path, server: SmtpTestServer) -> None:
    manage(
        data_dir, "shell", "-c",
        "from tests.factories import store; store(mode='smtp', server_name='127.0.0.1', "
        f"port={server.port}, security='none', username='', password='', "
        "from_address='alerts@example.com')",
    )  # fmt: skip


def queue_mail(data_dir: Path, *recipients: str) -> None:
    """One queued message per recipient, as ``send_mail()`` in the product queues them."""
    calls = "; ".join(f"send_mail('For {to}', 'Body', None, ['{to}'])" for to in recipients)
    manage(data_dir, "shell", "-c", f"from django.core.mail import send_mail; {calls}")


class Service:
    """``scripts/serve.py`` running as ``make run`` starts it, its log in a file."""

    def __init__(self, data_dir: Path, log_path: Path, *arguments: str, **env: str) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.process = subprocess.Popen(
            [sys.executable, "scripts/serve.py", *arguments],
            cwd=ROOT,
            env=service_env(data_dir, PORT=str(self.port), **env),
            stdout=log_path.open("w"),
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def pids(self, name: str) -> list[int]:
        """Every pid the supervisor started ``name`` with, in order."""
        return [int(pid) for pid in re.findall(rf"Started {name} \(pid (\d+)\)", self.log())]

    def wait_for_start(self, name: str, count: int = 1, timeout: float = 60) -> int:
        wait_for(lambda: len(self.pids(name)) >= count, timeout, f"start {count} of {name}")
        return self.pids(name)[count - 1]

    def status(self, path: str = "/accounts/login/") -> tuple[int, str] | None:
        """The HTTP status and Server header for ``path``, or None when nothing answers."""
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, response.headers.get("Server", "")
        except urllib.error.HTTPError as error:
            return error.code, error.headers.get("Server", "")
        except OSError:
            return None

    def wait_until_serving(self) -> None:
        wait_for(lambda: self.status() is not None, 60, "the web server to answer")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def start_service(data_dir: Path, tmp_path: Path):
    services: list[Service] = []

    def start(*arguments: str, **env: str) -> Service:
        service = Service(data_dir, tmp_path / f"serve-{len(services)}.log", *arguments, **env)
        services.append(service)
        return service

    yield start
    for service in services:
        service.stop()


@pytest.fixture
def smtp_server():
    with SmtpTestServer(security="plain") as server:
        yield server


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # Exited but not yet reaped by anyone is a zombie: gone for our purpose.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def recipients(server: SmtpTestServer) -> list[str]:
    return [to for message in server.messages for to in message.rcpt_tos]


# The restart schedule -------------------------------------------------------------------


def test_restarts_wait_one_second_then_twice_as_long_each_time_up_to_a_minute():
    delays = [serve.restart_delay(None, 0.5)]
    for _ in range(8):
        delays.append(serve.restart_delay(delays[-1], 0.5))
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_a_worker_that_ran_a_while_before_dying_is_restarted_after_one_second():
    assert serve.restart_delay(60.0, serve.STEADY_AFTER) == 1


def test_a_malformed_worker_count_is_refused_saying_what_is_expected(data_dir, start_service):
    service = start_service(MAILCONFIG_WORKERS="two")
    assert service.process.wait(timeout=30) == 2
    assert "MAILCONFIG_WORKERS must be a whole number (0 or more), not 'two'" in service.log()
    assert "Started" not in service.log()


# Real processes -------------------------------------------------------------------------


def test_make_run_serves_with_gunicorn_and_static_files_through_whitenoise(start_service):
    service = start_service(MAILCONFIG_WORKERS="2")
    service.wait_until_serving()
    assert service.status() == (200, "gunicorn")
    assert service.status("/static/vendor/bootstrap/bootstrap.min.css") == (200, "gunicorn")
    assert service.status("/static/no-such-file.css")[0] == 404
    service.wait_for_start("mail worker 2")  # MAILCONFIG_WORKERS workers
    assert all(alive(pid) for pid in service.pids("mail worker \\d"))


def test_make_dev_serves_with_the_development_server(start_service):
    service = start_service("--dev", MAILCONFIG_WORKERS="0")
    service.wait_until_serving()
    status, server = service.status()
    assert status == 200 and server.startswith("WSGIServer/")


def test_a_killed_worker_is_started_again_and_sends_the_mail_queued_meanwhile(
    data_dir, start_service, smtp_server
):
    use_smtp_server(data_dir, smtp_server)
    service = start_service()
    first = service.wait_for_start("mail worker 1")
    service.wait_until_serving()

    os.kill(first, signal.SIGKILL)
    queue_mail(data_dir, "while-down@example.com")
    wait_for(lambda: "was killed by SIGKILL" in service.log(), 30, "the restart to be logged")
    assert f"The mail worker 1 (pid {first}) was killed by SIGKILL; starting it again in 1 s." in (
        service.log()
    )
    assert service.status() == (200, "gunicorn")  # the console stays up
    second = service.wait_for_start("mail worker 1", count=2)
    assert second != first and alive(second) and not alive(first)
    wait_for(lambda: smtp_server.message_count == 1, 60, "the queued message to be sent")
    assert recipients(smtp_server) == ["while-down@example.com"]
    assert service.process.poll() is None


def test_a_worker_that_dies_again_at_once_waits_longer_before_its_next_start(start_service):
    service = start_service()
    os.kill(service.wait_for_start("mail worker 1"), signal.SIGKILL)
    os.kill(service.wait_for_start("mail worker 1", count=2), signal.SIGKILL)
    third = service.wait_for_start("mail worker 1", count=3)
    assert re.findall(r"starting it again in (\d+) s", service.log()) == ["1", "2"]
    assert alive(third)


def test_a_worker_that_exits_by_itself_is_restarted_and_its_status_logged(start_service):
    service = start_service()
    worker = service.wait_for_start("mail worker 1")
    # The library logs this once its signal handlers are in place.
    wait_for(lambda: "Starting worker" in service.log(), 60, "the worker loop to start")
    os.kill(worker, signal.SIGQUIT)  # the library's worker exits 0 on it, like on SIGTERM
    service.wait_for_start("mail worker 1", count=2)
    assert f"The mail worker 1 (pid {worker}) exited with status 0; starting it again" in (
        service.log()
    )


def test_when_the_web_server_dies_everything_stops_with_a_non_zero_status(start_service):
    service = start_service(MAILCONFIG_WORKERS="2")
    service.wait_until_serving()
    web = service.pids("web server \\(gunicorn\\)")[0]
    workers = [service.wait_for_start(f"mail worker {n}") for n in (1, 2)]

    os.kill(web, signal.SIGKILL)
    assert service.process.wait(timeout=90) == 128 + signal.SIGKILL
    assert "was killed by SIGKILL: stopping the mail workers." in service.log()
    assert not any(alive(pid) for pid in workers)
    wait_for(lambda: service.status() is None, 30, "gunicorn's own workers to stop")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_one_signal_stops_the_web_server_and_every_worker(start_service, signum):
    service = start_service(MAILCONFIG_WORKERS="2")
    service.wait_until_serving()
    pids = [service.pids("web server \\(gunicorn\\)")[0]]
    pids += [service.wait_for_start(f"mail worker {n}") for n in (1, 2)]

    service.process.send_signal(signum)
    assert service.process.wait(timeout=90) == 0
    assert not any(alive(pid) for pid in pids)
    assert service.status() is None


def test_a_stop_lets_the_worker_finish_the_message_it_is_sending_and_take_no_new_one(
    data_dir, start_service, smtp_server
):
    use_smtp_server(data_dir, smtp_server)
    service = start_service()
    service.wait_for_start("mail worker 1")
    smtp_server.injections.delays["MAIL"] = 3.0  # each message takes 3 s at the server
    queue_mail(data_dir, "first@example.com", "second@example.com")
    wait_for(lambda: smtp_server.connections == 1, 60, "the worker to start sending")

    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=90) == 0
    assert recipients(smtp_server) == ["first@example.com"]  # finished, and nothing after it

    smtp_server.injections.delays.clear()
    again = start_service()
    again.wait_for_start("mail worker 1")
    wait_for(lambda: smtp_server.message_count == 2, 60, "the second message after a restart")
    assert recipients(smtp_server) == ["first@example.com", "second@example.com"]
