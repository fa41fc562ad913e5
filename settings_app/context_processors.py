"""Template context for every console page: the "Mail is not being delivered" banner."""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from sender import incidents
from sender.models import Incident

from .middleware import PERMISSION

logger = logging.getLogger(__name__)


def mail_incident(request: HttpRequest) -> dict[str, object]:
    """``mail_incidents``: the open incidents, read only when a page shows the banner."""
    return {"mail_incidents": SimpleLazyObject(lambda: _open_incidents(request))}


def _open_incidents(request: HttpRequest) -> list[Incident]:
    user = getattr(request, "user", None)
    if user is None or not user.has_perm(PERMISSION):
        return []  # the banner links to pages only the console's admins may open
    try:
        return incidents.open_incidents()
    except DatabaseError:
        # The page that says the database is unavailable must still render.
        logger.warning("Open incidents could not be read for the banner", exc_info=True)
        return []
