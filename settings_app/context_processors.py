"""Template context for every console page."""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from .microsoft_365 import basic_auth_at_risk, sunset_phrase
from .models import MailServerConfig

logger = logging.getLogger(__name__)
# The fields the sunset check reads: no secret column is loaded, so nothing is decrypted
# (a lost encryption key must not take every page down with it).
SUNSET_FIELDS = ("mode", "auth", "username", "server_name", "version")


def basic_auth_sunset(request: HttpRequest) -> dict[str, Any]:
    """``basic_auth_sunset_banner``: the saved settings will stop sending at the sunset.

    Lazy: the stored row is read only when a page renders the banner (base.html).
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"basic_auth_sunset_banner": SimpleLazyObject(_banner)}


def _banner() -> dict[str, str]:
    try:
        row = (
            MailServerConfig.objects.filter(pk=MailServerConfig.SINGLETON_ID)
            .values(*SUNSET_FIELDS)
            .first()
        )
    except DatabaseError as fault:
        # The page itself says what is wrong with the database; the banner just stays away.
        logger.warning("Basic-auth sunset banner skipped: %s", type(fault).__name__)
        return {}
    if not row or not row["version"] or not basic_auth_at_risk(lambda name: row[name] or ""):
        return {}
    return {"server": row["server_name"], "username": row["username"], "when": sunset_phrase()}
