"""Discard stored secrets that can no longer be decrypted (the key was lost)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from settings_app import encryption
from settings_app.fields import encrypted_columns, raw_rows


class Command(BaseCommand):
    help = (
        "Blank every stored secret that the configured keys cannot decrypt, so the page "
        "works again and the secrets can be re-entered. Readable secrets are kept."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        cleared = 0
        with transaction.atomic():
            for model, names in encrypted_columns():
                for row in raw_rows(model, names):
                    lost = [n for n in names if row[n] and not _readable(row[n])]
                    if lost:
                        model._default_manager.filter(pk=row["pk"]).update(
                            **dict.fromkeys(lost, "")
                        )
                        cleared += len(lost)
        self.stdout.write(
            f"Cleared {cleared} unreadable secret(s). Re-enter them on the Mail Server page."
        )


def _readable(token: str) -> bool:
    try:
        encryption.decrypt(token)
    except encryption.EncryptionKeyError:
        return False
    return True
