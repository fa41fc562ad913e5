"""Saving the Mail Server form: one transaction, a row lock, a version check, an audit entry."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from sender import pauses

from .forms import MailServerForm
from .models import TEST_MAIL_ACTION, AuditEntry, MailServerConfig

# The audit's name for changes made from the command line without --user.
COMMAND_LINE_USER = "(command line)"


class VersionConflict(Exception):
    """Someone saved after this form was loaded; nothing was written."""

    def __init__(self, current: MailServerConfig, entries: list[AuditEntry]) -> None:
        super().__init__("The settings were changed by someone else.")
        self.current = current
        self.entries = entries

    def describe(self) -> str:
        """Who changed what and when, in one sentence for the admin."""
        parts = []
        for entry in reversed(self.entries):
            fields = ", ".join(entry.changed_fields) or "no fields"
            when = timezone.localtime(entry.created_at).strftime("%Y-%m-%d %H:%M:%S %Z")
            parts.append(f"{entry.username} changed {fields} at {when}")
        return "; ".join(parts) or f"the settings are now at version {self.current.version}"


@dataclass(frozen=True)
class SaveResult:
    """The saved record and the labels of the fields that changed."""

    config: MailServerConfig
    changed: list[str]


def save_settings(
    form: MailServerForm,
    *,
    user: User | None,
    source_ip: str | None,
    action: str = "Saved settings",
    only_if_changed: bool = False,
) -> SaveResult:
    """Write a valid form into the stored configuration, or raise ``VersionConflict``.

    ``user`` is None for a management command run by the operator (``import_mail_settings``).
    With ``only_if_changed``, a form that changes nothing saves nothing: no new version,
    no audit entry (``changed`` is then empty).
    """
    connection = form.stored.connection
    MailServerConfig.ensure_row(connection)
    with transaction.atomic():
        # The lock serialises concurrent saves; the version check catches stale forms.
        config = MailServerConfig.objects.select_for_update().get(pk=form.stored.pk)
        if config.version != form.cleaned_data["version"]:
            newer = AuditEntry.objects.filter(
                connection=connection, version__gt=form.cleaned_data["version"]
            ).exclude(
                action=TEST_MAIL_ACTION  # tests change nothing
            )
            raise VersionConflict(config, list(newer[:5]))
        changed = form.apply_to(config)
        if only_if_changed and not changed:
            config.refresh_from_db()  # apply_to set the same values; keep the row as it is
            return SaveResult(config=config, changed=[])
        config.version += 1
        config.updated_at = timezone.now()
        config.updated_by = user
        config.save()
        AuditEntry.objects.create(
            user=user,
            username=user.get_username() if user is not None else COMMAND_LINE_USER,
            source_ip=source_ip,
            version=config.version,
            action=action,
            connection=connection,
            changed_fields=changed,
        )
        # A save is the change a refused account waits for: its messages go again.
        pauses.resume(connection, "its settings were saved")
    return SaveResult(config=config, changed=changed)
