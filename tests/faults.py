"""Faults placed where real ones happened, to see what the console does with them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.http import HttpRequest, HttpResponse


class FailBeforeTheView:
    """A middleware whose process_view raises: the database failed in the access check.

    It runs before the view, so before the view's ``sensitive_post_parameters``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, *args: Any) -> None:
        raise RuntimeError("failed before the view ran")


class RecordingBackend(BaseEmailBackend):
    """An e-mail backend that keeps what it is handed, to see which backend a sender used."""

    handed: ClassVar[list[EmailMessage]] = []

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        self.handed.extend(email_messages)
        return len(email_messages)
