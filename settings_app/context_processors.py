"""Template context for every console page: the expiry radar's banner."""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.http import HttpRequest

from .expiry_radar import Expiry, expiry_warnings

logger = logging.getLogger(__name__)


def expiry_banner(request: HttpRequest) -> dict[str, list[Expiry]]:
    """``expiry_warnings`` for those who may fix them; nothing for anyone else."""
    user = getattr(request, "user", None)
    try:
        if user is None or not user.has_perm("settings_app.change_mail_server"):
            return {"expiry_warnings": []}
        return {"expiry_warnings": expiry_warnings()}
    except DatabaseError as fault:
        # The page itself says what is wrong with the database; the banner just stays away.
        logger.warning("Expiry radar not shown: %s (%s)", fault, type(fault).__name__)
        return {"expiry_warnings": []}
