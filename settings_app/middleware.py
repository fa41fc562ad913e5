"""Access control for every console view, and a clear page when secrets cannot be read."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .encryption import EncryptionKeyError

logger = logging.getLogger(__name__)

PERMISSION = "settings_app.change_mail_server"


class ConsoleAccessMiddleware:
    """Every view a signed-in user reaches needs the mail-server permission.

    Signing in itself is Django's ``LoginRequiredMiddleware`` (placed before this one),
    so a view is reachable anonymously only when marked ``login_not_required``. Django
    has no counterpart for a permission, so that part stays ours; checking here, not
    per view, means a view added later cannot forget it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        if self._is_exempt(view_func):
            return None
        if not request.user.has_perm(PERMISSION):
            raise PermissionDenied
        return None

    @staticmethod
    def _is_exempt(view_func: Callable[..., Any]) -> bool:
        view_class = getattr(view_func, "view_class", None)
        module = getattr(view_func, "__module__", "")
        return (
            # Sign-in and sign-out pages, and anything else marked with login_not_required.
            getattr(view_func, "login_required", True) is False
            # Django's admin (users and groups) checks staff status itself.
            or module.startswith("django.contrib.admin")
            or (view_class is not None and view_class.__module__.startswith("django.contrib.auth"))
        )


class SecretKeyErrorMiddleware:
    """Turn "stored secrets cannot be decrypted" into an explanatory page instead of a 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, EncryptionKeyError):
            return None
        logger.error("Encryption key problem: %s", exception)
        return render(request, "key_error.html", {"reason": str(exception)}, status=503)


CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class ContentSecurityPolicyMiddleware:
    """Only the console's own scripts and styles may run: no inline code, no CDN.

    Django's admin (users and groups) keeps its own rules: it uses inline scripts.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        match = request.resolver_match
        if not (match and match.app_name == "admin"):
            response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response
