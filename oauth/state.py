"""The OAuth ``state``: random, single use, ten minutes, bound to one user and one browser.

Like allauth's statekit, the server keeps the state with the PKCE verifier and
checks it on the callback; unlike it, the record lives in the database, so it
survives the session being replaced by a login in the middle of the consent
(the admin's session may expire while they are at the provider). The binding to
the browser is a random cookie whose hash is stored with the state.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.urls import get_script_prefix
from django.utils import timezone

from settings_app.models import Connection

from .models import AuthorizationRequest

LIFETIME = timedelta(minutes=10)
BROWSER_COOKIE = "mailconfig_oauth_browser"
MAX_PENDING_PER_USER = 5


class StateRefused(Exception):
    """The callback's state cannot be accepted; ``reason`` says why, for the admin."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def browser_token(request: HttpRequest) -> str:
    """This browser's binding token: the cookie's value, or a new one to set."""
    return request.COOKIES.get(BROWSER_COOKIE) or secrets.token_urlsafe(32)


def set_browser_cookie(request: HttpRequest, response: HttpResponse, token: str) -> None:
    """Keep the binding token in an HttpOnly cookie that the provider's redirect brings back.

    SameSite=Lax: sent on the top-level GET navigation back from the provider.
    """
    response.set_cookie(
        BROWSER_COOKIE,
        token,
        max_age=int(timedelta(days=1).total_seconds()),
        path=get_script_prefix(),
        secure=request.is_secure(),
        httponly=True,
        samesite="Lax",
    )


def create_state(
    *,
    user: User,
    browser: str,
    provider: str,
    config_version: int,
    redirect_uri: str,
    connection: str = Connection.PRIMARY,
) -> tuple[str, AuthorizationRequest]:
    """A new state and its pending record; the flow data is added once the provider built it."""
    now = timezone.now()
    # Old and surplus records are useless: drop them so the table stays small.
    AuthorizationRequest.objects.filter(created_at__lt=now - timedelta(days=1)).delete()
    pending = AuthorizationRequest.objects.filter(user=user, used_at__isnull=True)
    surplus = pending.order_by("-created_at").values_list("pk", flat=True)[
        MAX_PENDING_PER_USER - 1 :
    ]
    AuthorizationRequest.objects.filter(pk__in=list(surplus)).delete()

    state = secrets.token_urlsafe(32)
    record = AuthorizationRequest(
        state_hash=_hash(state),
        browser_hash=_hash(browser),
        user=user,
        provider=provider,
        connection=connection,
        config_version=config_version,
        redirect_uri=redirect_uri,
        flow="{}",
        created_at=now,
    )
    return state, record


def save_flow(record: AuthorizationRequest, flow: dict[str, Any]) -> None:
    record.flow = json.dumps(flow)
    record.save()


def consume_state(request: HttpRequest, state: str) -> AuthorizationRequest:
    """The pending request this callback answers, marked used; or ``StateRefused``."""
    if not state:
        raise StateRefused("The answer from the provider carries no state.")
    record = AuthorizationRequest.objects.filter(state_hash=_hash(state)).first()
    if record is None:
        raise StateRefused(
            "This authorization was not started here (the state is unknown). It may be "
            "forged, or it was started before the console was reinstalled."
        )
    if record.user_id != request.user.pk:
        raise StateRefused("This authorization was started by another administrator.")
    if record.used_at is not None:
        raise StateRefused("This authorization answer was already used once.")
    if record.created_at < timezone.now() - LIFETIME:
        raise StateRefused("This authorization took longer than 10 minutes and has expired.")
    if record.browser_hash != _hash(request.COOKIES.get(BROWSER_COOKIE, "")):
        raise StateRefused("This authorization was started in another browser.")
    with transaction.atomic():
        # Single use even when the same answer arrives twice at once.
        taken = AuthorizationRequest.objects.filter(pk=record.pk, used_at__isnull=True).update(
            used_at=timezone.now()
        )
    if not taken:
        raise StateRefused("This authorization answer was already used once.")
    return record


def flow_of(record: AuthorizationRequest) -> dict[str, Any]:
    return json.loads(record.flow or "{}")
