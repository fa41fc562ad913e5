"""Template context for every console page: the banners that say mail is (or will be) failing."""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from sender import incidents, worker_outage
from sender.models import Incident

from .expiry_radar import Expiry, expiry_warnings
from .microsoft_365 import basic_auth_at_risk, sunset_phrase
from .middleware import PERMISSION
from .models import MailServerConfig

logger = logging.getLogger(__name__)
# The fields the sunset check reads: no secret column is loaded, so nothing is decrypted
# (a lost encryption key must not take every page down with it).
SUNSET_FIELDS = ("mode", "auth", "username", "server_name", "version")


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


def no_worker(request: HttpRequest) -> dict[str, object]:
    """``no_worker``: mail waits and no mail worker runs; read only when a page shows it.

    The page that first finds it opens the no-worker incident, which posts the webhook
    once per outage (``sender/worker_outage.py``).
    """
    return {"no_worker": SimpleLazyObject(lambda: _no_worker_alarm(request))}


def _no_worker_alarm(request: HttpRequest) -> worker_outage.Alarm | None:
    user = getattr(request, "user", None)
    if user is None or not user.has_perm(PERMISSION):
        return None  # the fix is for the console's admins
    try:
        found = worker_outage.alarm()
        if found is not None:
            worker_outage.notice(found)
        return found
    except DatabaseError:
        # The page that says the database is unavailable must still render.
        logger.warning("Whether a mail worker runs could not be read", exc_info=True)
        return None


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


def expiry_banner(request: HttpRequest) -> dict[str, list[Expiry]]:
    """``expiry_warnings`` for those who may fix them; nothing for anyone else."""
    user = getattr(request, "user", None)
    try:
        if user is None or not user.has_perm(PERMISSION):
            return {"expiry_warnings": []}
        return {"expiry_warnings": expiry_warnings()}
    except DatabaseError as fault:
        # The page itself says what is wrong with the database; the banner just stays away.
        logger.warning("Expiry radar not shown: %s (%s)", fault, type(fault).__name__)
        return {"expiry_warnings": []}
