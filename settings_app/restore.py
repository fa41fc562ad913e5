"""Applying an imported settings file: through the page's form rules, saved as the page saves.

The form validates the file's values exactly as it validates a post (so a file cannot
store what the page would refuse), and ``save_settings`` bumps the version and writes
the audit entry. Like the page, the form writes the fields of the chosen mode and
options; the stored values of the others are kept. Any stored OAuth grant of an
imported connection is removed: it was made for this installation's earlier settings,
and a new one must be authorized.

Every connection in the file (the primary, and the backup when the file has one) is
checked before any is saved, then all are saved in one transaction: an import changes
everything or nothing. A file without a backup leaves a stored backup connection as it
is (a file from before backups existed, or from a console without one, says nothing
about it); turn it off on its page, or import a file that has one. A connection the
file leaves exactly as stored is not saved at all: no new version, no audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from oauth.grant import delete_grant, stored_grant

from .forms import UPLOADED_SECRETS, MailServerForm
from .models import CONNECTION_PAGE_TITLES, SECRET_FIELDS, AuditEntry, Connection, MailServerConfig
from .saving import COMMAND_LINE_USER, SaveResult, VersionConflict, save_settings
from .settings_file import CONNECTIONS, ImportedConnection, SettingsFileError
from .values import MailSettings


@dataclass(frozen=True)
class ImportResult:
    """What the import did, for the command's report."""

    saved: SaveResult
    grant_removed: bool
    missing_secrets: list[str] = field(default_factory=list)

    @property
    def connection(self) -> str:
        return self.saved.config.connection


def form_for(connection: ImportedConnection, stored: MailServerConfig) -> MailServerForm:
    """The Mail Server form, bound to the file's values as if an admin had typed them."""
    data = {
        name: "" if value is None else str(value)
        for name, value in connection.fields.items()
        if not isinstance(value, bool)
    }
    # A checkbox (the backup's failover switch) posts "on" when ticked, nothing otherwise.
    data |= {name: "on" for name, value in connection.fields.items() if value is True}
    data["version"] = str(stored.version)
    files = {}
    for name, value in connection.secrets.items():
        if name in UPLOADED_SECRETS:  # checked again as the page checks an upload
            files[name] = SimpleUploadedFile(f"{name}.txt", value.encode())
        else:
            data[name] = value
    return MailServerForm(data, files, stored=stored)


def import_settings(
    connections: dict[str, ImportedConnection], *, user: User | None, source: str
) -> list[ImportResult]:
    """Validate every connection of a file, then save them all; raise ``SettingsFileError``
    (nothing saved). Returns one result per imported connection, the primary first."""
    forms = {
        name: _valid_form(name, connections[name]) for name in CONNECTIONS if name in connections
    }
    results = []
    try:
        with transaction.atomic():
            for form in forms.values():
                saved = save_settings(
                    form,
                    user=user,
                    source_ip=None,
                    action=f"Imported settings from {source}",
                    only_if_changed=True,
                )
                # Settings left as they were keep the grant made for them.
                grant_removed = bool(saved.changed) and _remove_grant(saved, user)
                results.append((form, saved, grant_removed))
    except VersionConflict as conflict:
        raise SettingsFileError(
            f"Not imported: {conflict.describe()} while the file was being read. Run the "
            "import again."
        ) from conflict
    return [
        ImportResult(
            saved=saved,
            grant_removed=grant_removed,
            missing_secrets=[
                str(form.fields[name].label)
                for name in form.active_fields()
                if name in SECRET_FIELDS and not getattr(saved.config, name)
            ],
        )
        for form, saved, grant_removed in results
    ]


def _valid_form(name: str, connection: ImportedConnection) -> MailServerForm:
    form = form_for(connection, MailServerConfig.load(name))
    if not form.is_valid():
        lines = [
            f"{form.fields[field].label if field in form.fields else 'Form'}: {error}"
            for field, errors in form.errors.items()
            for error in errors
        ]
        raise SettingsFileError(
            f"The file's settings of the {name} connection do not pass the "
            f"{CONNECTION_PAGE_TITLES[Connection(name)]} page's checks; nothing was changed:\n  "
            + "\n  ".join(lines)
        )
    return form


def _remove_grant(saved: SaveResult, user: User | None) -> bool:
    if stored_grant(saved.config.connection) is None:
        return False
    # Best effort revocation at Google, as Disconnect does; Microsoft has none.
    delete_grant(MailSettings.from_model(saved.config))
    AuditEntry.objects.create(
        user=user,
        username=user.get_username() if user is not None else COMMAND_LINE_USER,
        version=saved.config.version,
        connection=saved.config.connection,
        action="Removed OAuth authorization",
        changed_fields=["Settings imported: authorize again"],
    )
    return True
