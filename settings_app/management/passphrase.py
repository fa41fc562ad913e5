"""Where the settings-file commands get a passphrase: a file, the environment, or a prompt.

Never from the command line, where it would show in ``ps`` and the shell's history.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

PASSPHRASE_ENV = "MAILCONFIG_EXPORT_PASSPHRASE"  # noqa: S105  (a variable name, not a secret)


class _RefusePassphraseInClear(argparse.Action):
    """``--passphrase VALUE`` is refused with the ways that are safe."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        # parser.error: a clean message on the command line, CommandError from call_command.
        parser.error(
            "the passphrase is never given on the command line (it would show in ps and "
            f"the shell's history): use --passphrase-file FILE, the {PASSPHRASE_ENV} "
            "environment variable, or type it when asked."
        )


def add_passphrase_arguments(parser: argparse.ArgumentParser) -> None:
    """--passphrase-file, and a --passphrase that explains why it is refused."""
    parser.add_argument(
        "--passphrase-file",
        metavar="FILE",
        help=f"Read the passphrase from the first line of FILE (else {PASSPHRASE_ENV}, "
        "else a prompt).",
    )
    parser.add_argument("--passphrase", action=_RefusePassphraseInClear, help=argparse.SUPPRESS)


def read_passphrase(options: dict[str, Any], *, confirm: bool) -> str:
    """The passphrase from --passphrase-file, the environment, or a prompt (twice to confirm)."""
    path = options.get("passphrase_file")
    if path:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise CommandError(f"Cannot read the passphrase file {path}: {err.strerror}.") from err
        if not lines or not lines[0]:
            raise CommandError(f"The passphrase file {path} is empty.")
        return lines[0]
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    if not sys.stdin.isatty():
        raise CommandError(
            f"A passphrase is needed: use --passphrase-file FILE or {PASSPHRASE_ENV} "
            "(there is no terminal to ask on)."
        )
    passphrase = getpass.getpass("Passphrase: ")
    if confirm and getpass.getpass("Passphrase again: ") != passphrase:
        raise CommandError("The two passphrases differ; nothing was written.")
    return passphrase
