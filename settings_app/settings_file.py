"""The settings file of ``export_mail_settings`` and ``import_mail_settings``: write and read it.

A JSON document::

    {
      "format": "mailconfig.mail-settings",
      "version": 1,
      "exported_at": "2026-11-24T10:00:00+00:00",
      "settings_version": 7,
      "connections": {
        "primary": {"mode": "smtp", "server_name": "...", ...},
        "backup": {"mode": "api", ..., "use_when_primary_fails": true}   # when saved
      },
      "secrets": {...}                      # only with --include-secrets
    }

``connections`` holds every non-secret field of each connection by name: the
``primary`` always, the ``backup`` when the Backup Connection page has saved one
(with its failover switch). ``secrets`` is ``{"primary": {"password": ...},
"backup": {...}}`` sealed with a passphrase (``sealed_secrets``), bound to the rest
of the document. The OAuth grants are never in the file: they belong to the
installation that was authorized.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.utils import timezone

from .certificates import CERTIFICATE_SECRETS, fact_columns
from .models import SECRET_FIELDS, MailServerConfig
from .sealed_secrets import SealError, seal, unseal

FORMAT = "mailconfig.mail-settings"
# The top-level keys a settings file may have ("secrets" only when sealed in).
DOCUMENT_KEYS = frozenset(
    {"format", "version", "exported_at", "settings_version", "connections", "secrets"}
)
FORMAT_VERSION = 1
CONNECTIONS = ("primary", "backup")
# Fields only the backup connection has in the file (its page's checkbox), and their type.
BACKUP_ONLY_FIELDS = {"use_when_primary_fails": bool}
# Bookkeeping of this installation, not settings.
NOT_EXPORTED = frozenset(
    {
        "id",
        "version",
        "updated_at",
        "updated_by",
    }
    # Read from each certificate when it is imported (and checked) again.
    | {column for name in CERTIFICATE_SECRETS for column in fact_columns(name).values()}
)


class SettingsFileError(Exception):
    """The file cannot be imported; the message says why and what to do."""


@dataclass(frozen=True)
class ImportedConnection:
    """One connection read from a file: its plain fields and (when sealed in) its secrets."""

    fields: dict[str, Any]
    secrets: dict[str, str] = field(default_factory=dict, repr=False)


def exported_fields(connection: str = "primary") -> list[str]:
    """The non-secret fields of a connection's stored configuration, in the model's order
    (the failover switch only for the backup: the primary has none)."""
    return [
        model_field.name
        for model_field in MailServerConfig._meta.concrete_fields
        if model_field.name not in NOT_EXPORTED
        and model_field.name not in SECRET_FIELDS
        and (connection == "backup" or model_field.name not in BACKUP_ONLY_FIELDS)
    ]


def associated_data(document: dict[str, Any]) -> bytes:
    """Everything but the sealed secrets, canonically: what the seal protects from changes."""
    rest = {key: value for key, value in document.items() if key != "secrets"}
    return json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def export_document(
    config: MailServerConfig,
    *,
    backup: MailServerConfig | None = None,
    passphrase: str | None = None,
) -> dict[str, Any]:
    """The settings file for the primary ``config`` and the ``backup`` (when saved);
    secrets only when a passphrase seals them."""
    configs = {"primary": config}
    if backup is not None and backup.is_configured:
        configs["backup"] = backup
    document: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "exported_at": timezone.now().isoformat(timespec="seconds"),
        "settings_version": config.version,
        "connections": {
            name: {field: _plain(getattr(stored, field)) for field in exported_fields(name)}
            for name, stored in configs.items()
        },
    }
    if passphrase is not None:
        secrets = {
            name: {
                field: getattr(stored, field) for field in SECRET_FIELDS if getattr(stored, field)
            }
            for name, stored in configs.items()
        }
        document["secrets"] = seal(secrets, passphrase, associated_data(document))
    return document


def _plain(value: Any) -> Any:
    # Dates (Secret expires on) as the form reads them back: 2027-06-30.
    return value.isoformat() if isinstance(value, date) else value


def read_document(
    text: str | bytes, passphrase: Callable[[], str]
) -> dict[str, ImportedConnection]:
    """The connections in a settings file, checked; ``passphrase()`` is asked only when
    the file has sealed secrets. Raises ``SettingsFileError``."""
    try:
        document = json.loads(text)
    except (ValueError, UnicodeDecodeError) as err:
        raise SettingsFileError(f"The file is not JSON ({err}).") from err
    except RecursionError as err:  # "[[[[...": deeper than the parser's stack
        raise SettingsFileError(
            "The file is nested too deeply to be a settings file: nothing was imported."
        ) from err
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SettingsFileError(
            "This is not a Mail Console settings file (its format is not "
            f"{FORMAT!r}): export the settings with manage.py export_mail_settings."
        )
    _check_version(document.get("version"))
    unknown_keys = sorted(set(document) - DOCUMENT_KEYS)
    if unknown_keys:
        raise SettingsFileError(
            f"The file has entries this console does not know: {', '.join(unknown_keys)}. "
            "Import a file as export_mail_settings wrote it."
        )
    connections = document.get("connections")
    if not isinstance(connections, dict) or not isinstance(connections.get("primary"), dict):
        raise SettingsFileError("The file has no primary connection.")
    unknown = sorted(set(connections) - set(CONNECTIONS))
    if unknown:
        raise SettingsFileError(
            f"The file has connections this console does not know: {', '.join(unknown)}."
        )
    secrets = _secrets(document, passphrase) if "secrets" in document else {}
    return {
        name: ImportedConnection(_fields(name, connections[name]), secrets.get(name, {}))
        for name in connections
    }


def _check_version(version: Any) -> None:
    if not isinstance(version, int) or isinstance(version, bool):
        raise SettingsFileError("The file has no format version number.")
    if version < FORMAT_VERSION:
        raise SettingsFileError(
            f"The file has format version {version}, older than this console's "
            f"{FORMAT_VERSION}: export the settings again with this console's "
            "export_mail_settings (or import it into the version that made it, and export)."
        )
    if version > FORMAT_VERSION:
        raise SettingsFileError(
            f"The file has format version {version}, made by a newer Mail Console; this "
            f"one reads version {FORMAT_VERSION}. Upgrade this console, then import it."
        )


def _fields(connection: str, values: dict[str, Any]) -> dict[str, Any]:
    known = set(exported_fields(connection))
    unknown = sorted(set(values) - known)
    if unknown:
        secret = sorted(set(unknown) & set(SECRET_FIELDS))
        if secret:
            raise SettingsFileError(
                f"The {connection} connection has secrets in clear ({', '.join(secret)}): "
                "this console only imports secrets sealed by export_mail_settings "
                "--include-secrets."
            )
        raise SettingsFileError(
            f"The {connection} connection has fields this console does not know: "
            f"{', '.join(unknown)}."
        )
    for name, value in values.items():
        if name in BACKUP_ONLY_FIELDS:
            if not isinstance(value, BACKUP_ONLY_FIELDS[name]):
                raise SettingsFileError(
                    f"The {connection} connection's {name} is not true or false."
                )
        elif (value is not None and not isinstance(value, str | int)) or isinstance(value, bool):
            raise SettingsFileError(
                f"The {connection} connection's {name} is not text or a number."
            )
    return dict(values)


def _secrets(document: dict[str, Any], passphrase: Callable[[], str]) -> dict[str, dict[str, str]]:
    try:
        secrets = unseal(document["secrets"], passphrase(), associated_data(document))
    except SealError as err:
        raise SettingsFileError(str(err)) from err
    if not isinstance(secrets, dict):
        raise SettingsFileError("The sealed secrets are not in the expected form.")
    for connection, values in secrets.items():
        if connection not in CONNECTIONS or not isinstance(values, dict):
            raise SettingsFileError("The sealed secrets name an unknown connection.")
        if set(values) - set(SECRET_FIELDS) or not all(isinstance(v, str) for v in values.values()):
            raise SettingsFileError("The sealed secrets hold fields that are not secrets.")
    return secrets
