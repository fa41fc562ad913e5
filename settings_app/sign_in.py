"""Sign-in: a log line for every attempt, and the page a locked-out user sees.

Throttling itself is django-axes (``AXES_*`` in the settings), on the console's
sign-in page and on Django's admin sign-in page alike, since both go through
``authenticate()``. Failures lock a username from the address they came from
(``AXES_FAILURE_LIMIT``), so someone elsewhere cannot lock the admin out; and an
address for every username after a higher limit of its own
(``MAILCONFIG_LOGIN_ADDRESS_FAILURE_LIMIT``), so one address cannot guess many
usernames. The locked-out page does not say when the lock ends: that would tell an
attacker when to try again.
"""

from __future__ import annotations

import logging
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

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


class PairAndAddressLockout(AxesDatabaseHandler):
    """django-axes' database handler with two limits: ``AXES_FAILURE_LIMIT`` for one
    username from one address, ``MAILCONFIG_LOGIN_ADDRESS_FAILURE_LIMIT`` for one address
    over every username (``AXES_LOCKOUT_PARAMETERS`` lists the pair, then the address)."""

    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> int:
        # axes locks when this reaches AXES_FAILURE_LIMIT: an address over its own limit
        # counts as the pair's limit reached.
        pair, address = (
            attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            for attempts in self.get_user_attempts(request, credentials)
        )
        if address >= settings.MAILCONFIG_LOGIN_ADDRESS_FAILURE_LIMIT:
            return max(pair, settings.AXES_FAILURE_LIMIT)
        return pair


def locked_out_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the sign-in page again, saying what happened (not until when)."""
    username = (credentials or {}).get("username") or request.POST.get("username") or ""
    context: dict[str, Any] = {
        "form": LoginForm(request, initial={"username": username}),
        "next": request.POST.get("next") or request.GET.get("next", ""),
        "locked_out": True,
    }
    return render(request, "registration/login.html", context, status=LOCKED_OUT_STATUS)
