"""Applying an imported settings file: through the page's form rules, saved as the page saves.

The form validates the file's values exactly as it validates a post (so a file cannot
store what the page would refuse), and ``save_settings`` bumps the version and writes
the audit entry. Like the page, the form writes the fields of the chosen mode and
options; the stored values of the others are kept. Any stored OAuth grant is removed:
it was made for this installation's earlier settings, and a new one must be authorized.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from oauth.grant import delete_grant, stored_grant

from .forms import UPLOADED_SECRETS, MailServerForm
from .models import SECRET_FIELDS, AuditEntry, MailServerConfig
from .saving import COMMAND_LINE_USER, SaveResult, VersionConflict, save_settings
from .settings_file import ImportedConnection, SettingsFileError
from .values import MailSettings


@dataclass(frozen=True)
class ImportResult:
    """What the import did, for the command's report."""

    saved: SaveResult
    grant_removed: bool
    missing_secrets: list[str] = field(default_factory=list)


def form_for(connection: ImportedConnection, stored: MailServerConfig) -> MailServerForm:
    """The Mail Server form, bound to the file's values as if an admin had typed them."""
    data = {name: "" if value is None else str(value) for name, value in connection.fields.items()}
    data["version"] = str(stored.version)
    files = {}
    for name, value in connection.secrets.items():
        if name in UPLOADED_SECRETS:  # checked again as the page checks an upload
            files[name] = SimpleUploadedFile(f"{name}.txt", value.encode())
        else:
            data[name] = value
    return MailServerForm(data, files, stored=stored)


def import_settings(
    connection: ImportedConnection, *, user: AbstractBaseUser | None, source: str
) -> ImportResult:
    """Validate and save the primary connection from a file; raise ``SettingsFileError``."""
    MailServerConfig.ensure_row()
    form = form_for(connection, MailServerConfig.load())
    if not form.is_valid():
        lines = [
            f"{form.fields[name].label if name in form.fields else 'Form'}: {error}"
            for name, errors in form.errors.items()
            for error in errors
        ]
        raise SettingsFileError(
            "The file's settings do not pass the Mail Server page's checks; nothing was "
            "changed:\n  " + "\n  ".join(lines)
        )
    try:
        with transaction.atomic():
            saved = save_settings(
                form, user=user, source_ip=None, action=f"Imported settings from {source}"
            )
            grant_removed = _remove_grant(saved, user)
    except VersionConflict as conflict:
        raise SettingsFileError(
            f"Not imported: {conflict.describe()} while the file was being read. Run the "
            "import again."
        ) from conflict
    missing = [
        str(form.fields[name].label)
        for name in form.active_fields()
        if name in SECRET_FIELDS and not getattr(saved.config, name)
    ]
    return ImportResult(saved=saved, grant_removed=grant_removed, missing_secrets=missing)


def _remove_grant(saved: SaveResult, user: AbstractBaseUser | None) -> bool:
    if stored_grant() is None:
        return False
    # Best effort revocation at Google, as Disconnect does; Microsoft has none.
    delete_grant(MailSettings.from_model(saved.config))
    AuditEntry.objects.create(
        user=user,
        username=user.get_username() if user is not None else COMMAND_LINE_USER,
        version=saved.config.version,
        action="Removed OAuth authorization",
        changed_fields=["Settings imported: authorize again"],
    )
    return True
