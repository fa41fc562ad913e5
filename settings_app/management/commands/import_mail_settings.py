"""Read mail settings from an export_mail_settings file, checked as the page checks them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from settings_app.models import CONNECTION_PAGE_TITLES, Connection, MailServerConfig
from settings_app.restore import ImportResult, import_settings
from settings_app.settings_file import SettingsFileError, read_document

from ..passphrase import add_passphrase_arguments, read_passphrase


class Command(BaseCommand):
    help = (
        "Import mail server settings from a file written by export_mail_settings. The values "
        "pass the Mail Server (and Backup Connection) page's checks and are saved as the "
        "pages save them (new version, audit entry). A file without a backup connection "
        "leaves a stored one as it is. A stored OAuth authorization of an imported "
        "connection is removed: authorize again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The JSON file written by export_mail_settings.")
        parser.add_argument(
            "--user", metavar="USERNAME", help="Record the change in the audit as this user."
        )
        add_passphrase_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        user = None
        if options["user"]:
            model = get_user_model()
            user = model.objects.filter(**{model.USERNAME_FIELD: options["user"]}).first()
            if user is None:
                raise CommandError(f"There is no user {options['user']!r}.")
        try:
            text = path.read_bytes()
        except OSError as err:
            raise CommandError(f"Cannot read {path}: {err.strerror}.") from err
        try:
            connections = read_document(text, lambda: read_passphrase(options, confirm=False))
            results = import_settings(connections, user=user, source=path.name)
        except SettingsFileError as err:
            raise CommandError(f"{path}: {err}") from err

        for result in results:
            self._report(path, result)
        if "backup" not in connections and MailServerConfig.load(Connection.BACKUP).is_configured:
            self.stdout.write(
                "The file has no backup connection: the stored one was left as it is."
            )

    def _report(self, path: Path, result: ImportResult) -> None:
        config = result.saved.config
        page = CONNECTION_PAGE_TITLES[Connection(result.connection)]
        # The primary's lines read as before; the backup's say whose they are.
        whose = "" if result.connection == Connection.PRIMARY else "the backup connection's "
        if not result.saved.changed:
            self.stdout.write(
                f"{path.name} changes nothing in {whose or 'the '}settings (version "
                f"{config.version}): nothing was saved."
            )
        else:
            self.stdout.write(
                f"Imported {path.name} as {whose}settings version {config.version}: "
                + ", ".join(result.saved.changed)
                + "."
            )
        if result.missing_secrets:
            self.stdout.write(
                f"The file had none of these secrets and none are stored: enter them on the "
                f"{page} page: " + ", ".join(result.missing_secrets) + "."
            )
        if result.grant_removed or (config.mode == "smtp" and config.auth == "oauth"):
            self.stdout.write(
                f"SMTP OAuth {'of the backup connection ' if whose else ''}needs a new "
                "authorization"
                + (" (the stored one was removed)" if result.grant_removed else "")
                + f": open the {page} page and press Authorize (Configure for Google)."
            )
