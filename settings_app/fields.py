"""A model field that keeps its value encrypted in the database."""

from __future__ import annotations

from typing import Any

from django.db import models

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
