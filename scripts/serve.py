"""``make run``: the web server and one mail worker, started and stopped together.

Starts ``manage.py runserver 127.0.0.1:$PORT`` and ``manage.py db_worker`` as two
child processes, each in its own process group (runserver's autoreloader runs
the server in a grandchild, which must stop too). SIGINT (Ctrl+C) or SIGTERM is
passed on to both groups; when either child ends, the other is stopped. A child
still running ten seconds after the signal is killed.

More workers, on this machine or others, are more ``manage.py db_worker``
processes against the same database (see docs/operations.md).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRACE_SECONDS = 10.0


def start(name: str, *arguments: str) -> subprocess.Popen[bytes]:
    """Run ``manage.py`` with ``arguments`` in a new process group."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *arguments], cwd=ROOT, start_new_session=True
    )
    print(f"Started {name} (pid {process.pid})", flush=True)
    return process


def signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, signum)


def stop_all(children: list[subprocess.Popen[bytes]], signum: int) -> None:
    """Pass ``signum`` to every child's group; kill what is still there after the grace time."""
    for child in children:
        signal_group(child, signum)
    deadline = time.monotonic() + GRACE_SECONDS
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            signal_group(child, signal.SIGKILL)
            child.wait()
        # The group may outlive its leader (runserver's reloaded server): end it too.
        signal_group(child, signal.SIGKILL)


def main() -> int:
    port = os.environ.get("PORT", "8000")
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    children = [
        start("web server", "runserver", f"127.0.0.1:{port}"),
        start("mail worker", "db_worker"),
    ]
    while not received and all(child.poll() is None for child in children):
        time.sleep(0.2)
    stopped = next((child for child in children if child.poll() is not None), None)
    if stopped is not None and not received:
        print(f"pid {stopped.pid} ended (exit {stopped.returncode}); stopping the other.")
    stop_all(children, received[0] if received else signal.SIGTERM)
    return 0 if received else (stopped.returncode if stopped is not None else 0) or 1


if __name__ == "__main__":
    sys.exit(main())
