"""``make run`` and ``make dev``: the web server and the mail workers, supervised.

``make run`` starts gunicorn (``mailconfig/gunicorn_conf.py``: 127.0.0.1:$PORT, static
files through WhiteNoise) and ``MAILCONFIG_WORKERS`` mail workers (``manage.py db_worker``,
1 by default). ``make dev`` (``--dev``) starts Django's development server with its
autoreloader instead, and workers that reload when the code changes.

- A worker that exits or is killed is started again after 1 s, then 2, 4, ... at most
  60 s; one that had run for a minute starts over at 1 s. Each restart is logged with the
  exit status. The web server keeps serving meanwhile.
- If the web server ends, the workers are stopped and this exits non-zero, so that
  systemd or a container runtime restarts the whole.
- SIGINT (Ctrl+C) or SIGTERM is passed on to every process as SIGTERM: gunicorn finishes
  the requests it serves, a worker the message it is sending, and neither takes new work.
  What still runs ``MAILCONFIG_SEND_TIMEOUT`` (or gunicorn's graceful timeout, whichever is
  longer) plus a margin later is killed; a message cut off that way is sent again after
  its lease. A second Ctrl+C kills at once.

Each child runs in its own process group: the terminal's Ctrl+C reaches only this
process, and the server process of runserver's (or a reloading worker's) autoreloader is
stopped with its parent. This is a launcher, not background work inside Django: its loop
only watches its child processes. More workers, on other machines, are more
``manage.py db_worker`` processes against the same database (docs/operations.md).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRST_DELAY = 1.0
MAX_DELAY = 60.0
STEADY_AFTER = 60.0  # a worker that ran this long was healthy: its next restart waits 1 s
STOP_MARGIN = 10.0  # after the send timeout: the worker records the outcome and exits
WATCH_INTERVAL = 0.2

log = logging.getLogger("serve")


def restart_delay(previous: float | None, ran_for: float) -> float:
    """Seconds to wait before starting again a worker that ended after ``ran_for`` seconds.

    ``previous`` is the delay its last start waited (``None``: it was never restarted).
    """
    if previous is None or ran_for >= STEADY_AFTER:
        return FIRST_DELAY
    return min(previous * 2, MAX_DELAY)


def describe_exit(returncode: int) -> str:
    """``exited with status 1``, or ``was killed by SIGKILL``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


def failure_status(returncode: int) -> int:
    """This launcher's exit status when the web server ended with ``returncode``: never 0."""
    if returncode < 0:
        return 128 - returncode  # as a shell reports a death by signal
    return returncode or 1


@dataclass
class Child:
    """One supervised process: how to start it, the running process and its restart plan."""

    name: str
    arguments: list[str]
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    delay: float | None = None  # what its current start waited after the previous one ended
    restart_at: float | None = None  # set while it waits to be started again

    def start(self) -> None:
        self.process = subprocess.Popen(self.arguments, cwd=ROOT, start_new_session=True)
        self.started = time.monotonic()
        self.restart_at = None
        log.info("Started %s (pid %d)", self.name, self.process.pid)

    def signal_group(self, signum: int) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):  # already gone
                os.killpg(self.process.pid, signum)

    def gone(self) -> bool:
        """It has ended and nothing of its process group is left."""
        if self.process is None:
            return True
        if self.process.poll() is None:
            return False
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return True
        return False


class Supervisor:
    """Runs the web server and the workers until a signal or the web server's end."""

    def __init__(self, web: Child, workers: list[Child], grace: float) -> None:
        self.web = web
        self.workers = workers
        self.grace = grace
        self.received: list[int] = []

    def on_signal(self, signum: int, _frame: object) -> None:
        self.received.append(signum)

    def run(self) -> int:
        signal.signal(signal.SIGINT, self.on_signal)
        signal.signal(signal.SIGTERM, self.on_signal)
        for child in [self.web, *self.workers]:
            child.start()
        while not self.received:
            assert self.web.process is not None
            returncode = self.web.process.poll()
            if returncode is not None:
                log.error(
                    "The %s (pid %d) %s: stopping the mail workers.",
                    self.web.name, self.web.process.pid, describe_exit(returncode),
                )  # fmt: skip
                self.stop()
                return failure_status(returncode)
            now = time.monotonic()
            for worker in self.workers:
                self.watch(worker, now)
            time.sleep(WATCH_INTERVAL)
        log.info("%s received: stopping.", signal.Signals(self.received[0]).name)
        self.stop()
        return 0

    def watch(self, worker: Child, now: float) -> None:
        """Start ``worker`` again when its wait is over; notice when it has ended."""
        if worker.restart_at is not None:
            if now >= worker.restart_at:
                worker.start()
            return
        assert worker.process is not None
        returncode = worker.process.poll()
        if returncode is None:
            return
        worker.signal_group(signal.SIGKILL)  # what its autoreloader's parent left behind
        worker.delay = restart_delay(worker.delay, now - worker.started)
        worker.restart_at = now + worker.delay
        log.warning(
            "The %s (pid %d) %s; starting it again in %g s.",
            worker.name, worker.process.pid, describe_exit(returncode), worker.delay,
        )  # fmt: skip

    def stop(self) -> None:
        """SIGTERM to every process; SIGKILL to what remains after the grace time."""
        children = [self.web, *self.workers]
        for child in children:
            child.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while not all(child.gone() for child in children):
            if len(self.received) > 1 or time.monotonic() >= deadline:
                break  # a second Ctrl+C, or the grace time is over
            time.sleep(WATCH_INTERVAL)
        for child in children:
            if not child.gone():
                assert child.process is not None
                log.warning("The %s (pid %d) is still running: killing it.", child.name,
                            child.process.pid)  # fmt: skip
                child.signal_group(signal.SIGKILL)
            if child.process is not None:
                child.process.wait()


def worker_count() -> int:
    """``MAILCONFIG_WORKERS``: how many mail workers to run (1 by default)."""
    value = os.environ.get("MAILCONFIG_WORKERS", "").strip() or "1"
    if not value.isdigit():
        raise ValueError(f"MAILCONFIG_WORKERS must be a whole number (0 or more), not {value!r}.")
    return int(value)


def grace_seconds() -> float:
    """How long a graceful stop may take: the longer of a send and a request, plus a margin."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailconfig.settings")
    from django.conf import settings

    from mailconfig import gunicorn_conf

    return max(settings.MAILCONFIG_SEND_TIMEOUT, gunicorn_conf.graceful_timeout) + STOP_MARGIN


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dev", action="store_true", help="runserver with autoreload, and reloading workers"
    )
    arguments = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="[%(asctime)s] [%(process)d] [%(levelname)s] serve: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S %z",
    )
    try:
        workers = worker_count()
    except ValueError as error:
        log.error("%s", error)
        return 2
    sys.path.insert(0, str(ROOT))  # the settings module, as manage.py finds it
    from django.core.exceptions import ImproperlyConfigured

    try:
        # Reads the settings and gunicorn_conf: a bad variable (WEB_CONCURRENCY too, which
        # gunicorn itself would refuse with a traceback) stops here with its one line.
        grace = grace_seconds()
    except ImproperlyConfigured as error:
        log.error("%s", error)
        return 2
    manage = [sys.executable, str(ROOT / "manage.py")]
    if arguments.dev:
        port = os.environ.get("PORT", "8000")
        web = Child("web server (runserver)", [*manage, "runserver", f"127.0.0.1:{port}"])
        worker_command = [*manage, "db_worker", "--reload"]
    else:
        gunicorn = [sys.executable, "-m", "gunicorn", "-c", "python:mailconfig.gunicorn_conf"]
        web = Child("web server (gunicorn)", [*gunicorn, "mailconfig.wsgi"])
        worker_command = [*manage, "db_worker", "--no-reload"]
    mail_workers = [Child(f"mail worker {n}", worker_command) for n in range(1, workers + 1)]
    return Supervisor(web, mail_workers, grace).run()


if __name__ == "__main__":
    sys.exit(main())
