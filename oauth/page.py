"""What the Mail Server page shows and does for SMTP OAuth: redirect URI, grant status, actions."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from mailconfig.signed_in import SignedInRequest
from sender.errors import MailError
from settings_app.models import Connection, MailServerConfig
from settings_app.values import MailSettings

from .flow import account_warnings, begin
from .grant import grant_state
from .redirect_uri import opened_elsewhere, redirect_uri, refused_as_plain_http


def page_context(request: HttpRequest, stored: MailServerConfig) -> dict[str, Any]:
    """Extra template context for the OAuth panel of the Mail Server page."""
    config = MailSettings.from_model(stored)
    uri = redirect_uri(request)
    state = grant_state(config)
    warnings = (
        account_warnings(config, state.grant.account)
        if state.grant is not None and state.usable
        else []
    )
    backup = stored.connection == Connection.BACKUP
    return {
        # The panel's actions act on the grant of the page's connection.
        "oauth_check_url": reverse("oauth:backup_check" if backup else "oauth:check"),
        "oauth_disconnect_url": reverse(
            "oauth:backup_disconnect" if backup else "oauth:disconnect"
        ),
        "oauth_redirect_uri": uri,
        "oauth_opened_elsewhere": opened_elsewhere(request, uri),
        "oauth_plain_http": refused_as_plain_http(uri),
        "oauth_local_port": request.get_port(),
        "oauth_grant": state,
        "oauth_grant_warnings": warnings,
        "oauth_stored_active": stored.is_configured and config.uses_smtp_oauth,
    }


def after_save_response(request: SignedInRequest, config: MailServerConfig) -> HttpResponse | None:
    """After a save in SMTP OAuth mode: go to the provider's consent when it is needed.

    Authorize, Reconnect and Configure submit the form with ``after_save=authorize``
    (always start); a plain Save Settings starts only when no grant fits the settings.
    """
    settings = MailSettings.from_model(config)
    if not settings.uses_smtp_oauth:
        return None
    asked = request.POST.get("after_save") == "authorize"
    if not asked and not grant_state(settings).needs_authorization:
        return None
    try:
        return begin(request, settings)
    except MailError as err:
        messages.error(request, f"Saved, but the authorization could not start: {err}")
        return None
