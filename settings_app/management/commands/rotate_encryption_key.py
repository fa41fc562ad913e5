"""Re-encrypt every stored secret with the newest configured key."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import TextField, Value

from settings_app import encryption
from settings_app.fields import encrypted_columns, raw_rows


class Command(BaseCommand):
    help = (
        "Re-encrypt all stored secrets with the first key of MAILCONFIG_ENCRYPTION_KEYS. "
        "Add the new key in front of the old one, run this, then remove the old key."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        count = 0
        try:
            with transaction.atomic():
                for model, names in encrypted_columns():
                    for row in raw_rows(model, names):
                        updates = {n: encryption.rotate(row[n]) for n in names if row[n]}
                        if updates:
                            model._default_manager.filter(pk=row["pk"]).update(
                                **_raw(model, updates)
                            )
                            count += len(updates)
        except encryption.EncryptionKeyError as err:
            raise CommandError(f"{err} Nothing was changed.") from err
        self.stdout.write(
            self.style.SUCCESS(f"Re-encrypted {count} stored secret(s) with the newest key.")
        )


def _raw(model: Any, updates: dict[str, str]) -> dict[str, Any]:
    # update() would encrypt again through get_prep_value; write ciphertext as-is.
    return {name: Value(token, output_field=TextField()) for name, token in updates.items()}
