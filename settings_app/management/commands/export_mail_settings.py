"""Write the mail settings to a JSON file (secrets only sealed with a passphrase)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from settings_app.models import Connection, MailServerConfig
from settings_app.sealed_secrets import SealError
from settings_app.settings_file import export_document

from ..passphrase import add_passphrase_arguments, read_passphrase


def write_private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600), whatever was there.

    A new file beside it (``mkstemp``: O_EXCL, mode 0600) takes the name with
    ``os.replace``: an existing file's wider mode is not kept, and a symbolic link at
    ``path`` is replaced, never followed to write somewhere else.
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


class Command(BaseCommand):
    help = (
        "Write the mail server settings as JSON: every non-secret field of the primary "
        "connection and of the backup connection (when one is saved), and with "
        "--include-secrets the secrets encrypted with a passphrase (scrypt + AES-256-GCM). "
        "The OAuth authorizations are never exported."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--output", "-o", metavar="FILE", help="Write to FILE (mode 0600) instead of stdout."
        )
        parser.add_argument(
            "--include-secrets",
            action="store_true",
            help="Include the passwords, client secrets and JSON key, sealed with a passphrase.",
        )
        add_passphrase_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        config = MailServerConfig.load()
        if not config.is_configured:
            raise CommandError("Nothing to export: the mail settings have never been saved.")
        passphrase = read_passphrase(options, confirm=True) if options["include_secrets"] else None
        try:
            backup = MailServerConfig.load(Connection.BACKUP)
            document = export_document(config, backup=backup, passphrase=passphrase)
        except SealError as err:
            raise CommandError(str(err)) from err
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        if not options["output"]:
            self.stdout.write(text, ending="")
            return
        try:
            write_private_file(Path(options["output"]), text)
        except OSError as err:
            raise CommandError(f"Cannot write {options['output']}: {err.strerror}.") from err
        what = "with sealed secrets" if passphrase is not None else "without secrets"
        which = (
            "and the backup connection" if "backup" in document["connections"] else "(no backup)"
        )
        self.stderr.write(
            f"Exported settings version {config.version} {which} {what} to {options['output']}."
        )
