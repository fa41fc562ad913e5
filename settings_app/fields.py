"""A model field that keeps its value encrypted in the database, and where such fields are.

The encrypted columns are the list of secrets: the page, the error reports, Test
Mail, the audit and the key commands all derive it from the fields themselves.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db import models
from django.db.models import TextField
from django.db.models.functions import Cast

from . import encryption


class EncryptedTextField(models.TextField):
    """Text encrypted with the configured Fernet keys; "" is stored as "" (no secret)."""

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return encryption.encrypt(value)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value in (None, ""):
            return value
        return encryption.decrypt(value)


def encrypted_field_names(model: type[models.Model]) -> tuple[str, ...]:
    """Names of the model's encrypted fields, in declaration order."""
    # Forward fields only: readable while models are still loading (models.py uses it).
    return tuple(f.attname for f in model._meta.fields if isinstance(f, EncryptedTextField))


def encrypted_columns() -> list[tuple[type[models.Model], list[str]]]:
    """Every installed model with encrypted fields, and the names of those fields."""
    found = []
    for model in apps.get_models():
        names = list(encrypted_field_names(model))
        if names:
            found.append((model, names))
    return found


def raw_rows(model: type[models.Model], names: list[str]) -> list[dict[str, Any]]:
    """The stored ciphertext, rows locked (a plain TextField cast skips the decryption)."""
    casts = {f"raw_{name}": Cast(name, TextField()) for name in names}
    rows = model._default_manager.select_for_update().annotate(**casts).values("pk", *casts)
    return [{"pk": r["pk"], **{n: r[f"raw_{n}"] for n in names}} for r in rows]
