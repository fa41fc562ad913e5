"""Run the whole test suite, then the database-sensitive tests again on PostgreSQL.

SQLite ignores ``select_for_update``, so row locks and races are only really
tested on PostgreSQL: when one is reachable (``TEST_POSTGRES_URL``, default the
local server), the ``db_sensitive`` tests run there too. Under CI it must be.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from urllib.parse import urlparse

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 5432), 2):
            return True
    except OSError:
        return False


def pytest(*args: str, env: dict[str, str] | None = None) -> int:
    command = [sys.executable, "-m", "pytest", *args]
    print("+", " ".join(command), flush=True)
    return subprocess.run(command, env=env).returncode


def chromium_notice() -> None:
    """Say up front, not only in pytest's summary, why browser tests would be skipped."""
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    if os.environ.get("CI") == "true":
        print("Chromium is not installed: CI requires the browser tests (.ci/run installs it).")
    else:
        print(
            "Chromium is not installed, so the browser tests are skipped. To run them:\n"
            "    sudo apt-get install chromium"
        )


def main() -> int:
    extra = sys.argv[1:]
    chromium_notice()
    # Two processes, one per core: each gets its own test database, so the worker
    # subprocesses of the outbox tests never share a SQLite file with another test's.
    code = pytest("-n", "2", *extra)
    if code != 0:
        return code
    if reachable(POSTGRES_URL):
        env = {**os.environ, "DATABASE_URL": POSTGRES_URL}
        return pytest("-n", "2", "-m", "db_sensitive", *extra, env=env)
    message = (
        f"PostgreSQL not reachable at {POSTGRES_URL}: database-sensitive tests ran on SQLite only."
    )
    if os.environ.get("CI") == "true":
        print(message + " CI requires it.", file=sys.stderr)
        return 1
    print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
