"""``settings.ADMINS`` that follows the stored Admin Mail Address.

Django's ``mail_admins()`` (and its error e-mails) read ``settings.ADMINS``;
this sequence reads the saved configuration each time instead of a value
frozen in the settings file. Nothing here touches the database until used.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any


class StoredAdmins(Sequence):
    """A read-only list of (name, address) holding the Admin Mail Address, if one is saved."""

    def _entries(self) -> list[tuple[str, str]]:
        from django.apps import apps
        from django.db import DatabaseError

        # By name, not import: the project package imports no app module.
        MailServerConfig = apps.get_model("settings_app", "MailServerConfig")

        try:
            address = (
                MailServerConfig.objects.filter(pk=MailServerConfig.SINGLETON_ID)
                .values_list("admin_address", flat=True)
                .first()
            )
        except DatabaseError:
            return []  # before migrate, or the database is down: nobody to mail
        return [("Mail administrator", address)] if address else []

    def __getitem__(self, index: Any) -> Any:
        return self._entries()[index]

    def __len__(self) -> int:
        return len(self._entries())

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._entries())

    def __repr__(self) -> str:
        return "StoredAdmins(<Admin Mail Address>)"
