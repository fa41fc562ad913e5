"""Re-encrypt every stored secret with the newest configured key."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import TextField, Value
from django.db.models.functions import Cast

from settings_app import encryption
from settings_app.fields import EncryptedTextField


def encrypted_columns() -> list[tuple[Any, list[str]]]:
    """Every model with encrypted fields, and the names of those fields."""
    found = []
    for model in apps.get_models():
        names = [f.attname for f in model._meta.get_fields() if isinstance(f, EncryptedTextField)]
        if names:
            found.append((model, names))
    return found


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
                            model.objects.filter(pk=row["pk"]).update(**_raw(model, updates))
                            count += len(updates)
        except encryption.EncryptionKeyError as err:
            raise CommandError(f"{err} Nothing was changed.") from err
        self.stdout.write(
            self.style.SUCCESS(f"Re-encrypted {count} stored secret(s) with the newest key.")
        )


def raw_rows(model: Any, names: list[str]) -> list[dict[str, Any]]:
    """The stored ciphertext (a plain TextField cast skips the field's decryption)."""
    casts = {f"raw_{name}": Cast(name, TextField()) for name in names}
    rows = model.objects.select_for_update().annotate(**casts).values("pk", *casts)
    return [{"pk": r["pk"], **{n: r[f"raw_{n}"] for n in names}} for r in rows]


def _raw(model: Any, updates: dict[str, str]) -> dict[str, Any]:
    # update() would encrypt again through get_prep_value; write ciphertext as-is.
    return {name: Value(token, output_field=TextField()) for name, token in updates.items()}
