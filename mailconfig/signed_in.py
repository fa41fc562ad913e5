"""The type of a request that reached a console view: every console page requires sign-in."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest


class SignedInRequest(HttpRequest):
    """A request past the sign-in check (``LoginRequiredMiddleware``): ``user`` is an account,
    never ``AnonymousUser``. Views that act for the admin (audit, Test Mail, consent) take it."""

    user: User
