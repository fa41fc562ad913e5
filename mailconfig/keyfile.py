"""Secret files generated on first use: Django's secret key and the encryption key file.

Here, in the project package, because the settings module may import no app module
and the encryption module (in ``settings_app``) needs the same thing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


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
