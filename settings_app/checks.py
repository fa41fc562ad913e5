"""System checks: the encryption keys are usable and can read what is stored."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, register
from django.db import DatabaseError

from . import encryption
from .fields import encrypted_columns, raw_rows


@register()
def check_encryption_keys(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Fail loudly at start-up rather than with a broken page later."""
    try:
        encryption.fernet()
    except encryption.EncryptionKeyError as err:
        return [
            Error(
                str(err),
                hint="Set MAILCONFIG_ENCRYPTION_KEYS to Fernet keys (newest first) or fix the key file.",
                id="settings_app.E001",
            )
        ]
    return _check_stored_secrets()


def _check_stored_secrets() -> list[Error]:
    try:
        for model, names in encrypted_columns():
            for row in raw_rows(model, names):
                for name in names:
                    if row[name]:
                        encryption.decrypt(row[name])
    except DatabaseError:
        return []  # not migrated yet: nothing stored to check
    except encryption.EncryptionKeyError as err:
        return [
            Error(
                str(err),
                hint="Restore the key that encrypted the secrets (MAILCONFIG_ENCRYPTION_KEYS or the "
                "key file), or run `manage.py clear_mail_secrets` and re-enter them.",
                id="settings_app.E002",
            )
        ]
    return []
