"""Private files: Django's secret key and the encryption key file, generated on first
use, and the data directory and database, readable by the service's user only.

Here, in the project package, because the settings module may import no app module
and the encryption module (in ``settings_app``) needs the same thing.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger("mailconfig")

PRIVATE_DIRECTORY = 0o700
PRIVATE_FILE = 0o600


def private_directory(path: Path) -> Path:
    """``path`` created with mode 0700, or made 0700 (with a log line) if others could read it:
    it holds the database (recipients, subjects, the audit) and the keys."""
    path.mkdir(mode=PRIVATE_DIRECTORY, parents=True, exist_ok=True)
    keep_private(path, PRIVATE_DIRECTORY)
    return path


def keep_private(path: Path, mode: int = PRIVATE_FILE) -> None:
    """Take away the group's and others' access to an existing ``path``, saying so."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if current & 0o077:
        path.chmod(current & mode)
        logger.warning(
            "%s was open to other local users (mode %s): now %s.",
            path,
            oct(current)[2:],
            oct(current & mode)[2:],
        )


def read_or_create(path: Path, new_text: Callable[[], str]) -> str:
    """The file's text; on first use the file is created with ``new_text()``, mode 0600.

    Created with O_EXCL, so two processes starting at once never overwrite each
    other: the one that finds the file already created reads the other's.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        text = new_text()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first; read theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
    return path.read_text()
