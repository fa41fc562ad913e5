"""Django's ``migrate``, which also creates the SQLite database file when it is missing.

The console opens its SQLite file with ``mode=rw`` (``mailconfig/settings.py``),
so a database file that has gone missing is an error at request time, not a new
empty database that looks like "nothing configured". Creating the file is the
job of ``migrate``, which ``make run`` runs first.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from django.core.management.commands.migrate import Command as DjangoMigrateCommand
from django.db import connections

from mailconfig.keyfile import PRIVATE_FILE, private_directory


def sqlite_file(settings_dict: dict[str, Any]) -> Path | None:
    """The file behind a ``file:...?mode=rw`` SQLite database; None for anything else."""
    name = str(settings_dict.get("NAME") or "")
    if not settings_dict.get("ENGINE", "").endswith("sqlite3") or not name.startswith("file:"):
        return None
    if "mode=memory" in name:
        return None
    return Path(url2pathname(urlsplit(name).path))


class Command(DjangoMigrateCommand):
    """``migrate``; first creates a missing SQLite file (the only command that may)."""

    def execute(self, *args: Any, **options: Any) -> str | None:
        # Before Django's checks, which already connect.
        path = sqlite_file(connections[options.get("database") or "default"].settings_dict)
        if path is not None and not path.exists():
            private_directory(path.parent)
            # Created 0600 before SQLite opens it: the outbox and the audit are private.
            with contextlib.suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
            sqlite3.connect(path).close()
        return super().execute(*args, **options)
