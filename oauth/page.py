"""What the Mail Server page shows and does for SMTP OAuth (filled in by the consent flow)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from settings_app.models import MailServerConfig


def page_context(request: HttpRequest, stored: MailServerConfig) -> dict[str, Any]:
    """Extra template context for the OAuth panel of the Mail Server page."""
    return {}


def after_save_redirect(request: HttpRequest, config: MailServerConfig) -> str | None:
    """Where to go after a successful save (for example straight into consent), or None."""
    return None
