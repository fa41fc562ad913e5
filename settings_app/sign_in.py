"""Sign-in: a log line for every attempt, and the page a locked-out user sees.

Throttling itself is django-axes (``AXES_*`` in the settings): failures are
counted per username and per client address, on the console's sign-in page and
on Django's admin sign-in page alike, since both go through ``authenticate()``.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Any

from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Max, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from mailconfig.client_address import client_ip

from .forms import LoginForm

logger = logging.getLogger(__name__)

LOCKED_OUT_STATUS = 429


def log_sign_in(sender: Any, request: HttpRequest, user: AbstractBaseUser, **kwargs: Any) -> None:
    """Receiver of ``user_logged_in``: who signed in, from where."""
    logger.info(
        "Sign-in succeeded: user %r from %s (%s).",
        user.get_username(),
        client_ip(request),
        request.path,
    )


def log_failed_sign_in(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """Receiver of ``user_login_failed``: the username and address, never the password."""
    if request is None:
        return  # authenticate() called outside a request (a script): nothing to throttle
    username = credentials.get("username")
    address = client_ip(request)
    locked = getattr(request, "axes_locked_out", False)
    if locked and getattr(request, "axes_failures_since_start", None) is None:
        # django-axes refused it before any password was checked.
        logger.warning(
            "Sign-in refused, locked out after too many failures: user %r from %s (%s).",
            username,
            address,
            request.path,
        )
    elif locked:
        logger.warning(
            "Sign-in failed, now locked out: user %r from %s (%s).", username, address, request.path
        )
    else:
        logger.warning("Sign-in failed: user %r from %s (%s).", username, address, request.path)


def blocked_until(request: HttpRequest, username: str | None) -> datetime | None:
    """When the block on this username or address ends at the latest (None: not known)."""
    cool_off = get_cool_off(request)
    if cool_off is None:
        return None
    address = getattr(request, "axes_ip_address", None) or client_ip(request)
    matching = Q(ip_address=address) | Q(username=username) if username else Q(ip_address=address)
    latest = AccessAttempt.objects.filter(
        matching, attempt_time__gte=timezone.now() - cool_off
    ).aggregate(latest=Max("attempt_time"))["latest"]
    # Failures older than the cool-off no longer count, so the newest one ends the block.
    return (latest or timezone.now()) + cool_off


def locked_out_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the sign-in page again, saying what happened and until when."""
    username = (credentials or {}).get("username") or request.POST.get("username") or ""
    until = blocked_until(request, username)
    context: dict[str, Any] = {
        "form": LoginForm(request, initial={"username": username}),
        "next": request.POST.get("next") or request.GET.get("next", ""),
        "locked_out": True,
    }
    if until is not None:
        local = timezone.localtime(until)
        minutes = max(1, math.ceil((until - timezone.now()).total_seconds() / 60))
        context["locked_until"] = local.strftime("%H:%M %Z") + (
            "" if local.date() == timezone.localdate() else local.strftime(" on %Y-%m-%d")
        )
        context["locked_minutes"] = minutes
    return render(request, "registration/login.html", context, status=LOCKED_OUT_STATUS)
