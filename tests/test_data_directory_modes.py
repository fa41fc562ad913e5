"""The data directory (0700) and the SQLite database (0600) are the service user's alone:
they hold recipients, subjects and the audit. Made so at creation, fixed at start-up."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def manage(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MAILCONFIG_DATA_DIR": str(data_dir)}
    env["DJANGO_SETTINGS_MODULE"] = "mailconfig.settings"
    env.pop("DATABASE_URL", None)  # the SQLite default in the data directory
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_data_directory_and_database_are_private(tmp_path):
    data = tmp_path / "data"
    old_umask = os.umask(0o022)  # the usual umask: 0755 directories, 0644 files
    try:
        result = manage(data, "migrate", "--verbosity", "0")
    finally:
        os.umask(old_umask)
    assert result.returncode == 0, result.stderr
    assert mode(data) == 0o700
    assert mode(data / "db.sqlite3") == 0o600
    assert "open to other local users" not in result.stderr  # nothing needed fixing


def test_start_up_fixes_a_readable_directory_and_database_and_says_so(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    database = data / "db.sqlite3"
    database.write_bytes(b"")
    database.chmod(0o644)

    result = manage(data, "check")

    assert mode(data) == 0o700 and mode(database) == 0o600
    assert f"{data} was open to other local users (mode 755): now 700." in result.stderr
    assert f"{database} was open to other local users (mode 644): now 600." in result.stderr
