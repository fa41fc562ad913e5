"""The consent flow's views: thin, they parse the request and call ``oauth.flow``."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_POST

from mailconfig.signed_in import SignedInRequest
from sender.errors import MailError
from sender.transcript import Transcript
from settings_app.models import (
    CONNECTION_PAGE_TITLES,
    CONNECTION_PAGES,
    SECRET_FIELDS,
    Connection,
    MailServerConfig,
)
from settings_app.values import MailSettings

from .flow import ConsentFailed, SettingsChanged, begin, complete
from .grant import StoredGrantTokenProvider, delete_grant, grant_state
from .state import StateRefused


def _stored_oauth_settings(request: HttpRequest, connection: str) -> MailSettings | None:
    config = MailSettings.from_model(MailServerConfig.load(connection))
    if config.version and config.uses_smtp_oauth:
        return config
    messages.error(
        request,
        "Save the settings with Mode SMTP and Authentication OAuth first; "
        "the authorization is made for the saved settings.",
    )
    return None


@sensitive_post_parameters(*SECRET_FIELDS)
@require_POST
def start(request: SignedInRequest, connection: str = Connection.PRIMARY) -> HttpResponse:
    """Authorize / Reconnect / Try again: go to the provider's consent page."""
    config = _stored_oauth_settings(request, connection)
    if config is None:
        return redirect(CONNECTION_PAGES[connection])
    try:
        return begin(request, config)
    except MailError as err:
        return _failure_page(request, "The authorization could not start", err, connection)


@require_GET
def callback(request: SignedInRequest) -> HttpResponse:
    """/RestAPI/WC/OAuthSetting: where Microsoft and Google send the admin back."""
    try:
        completed = complete(request)
    except StateRefused as refused:
        return render(
            request,
            "oauth/authorization_failed.html",
            {"title": "This authorization answer was refused", "reason": refused.reason},
            status=400,
        )
    except SettingsChanged:
        return render(
            request,
            "oauth/authorization_failed.html",
            {
                "title": "The settings changed during the authorization",
                "reason": "The mail server settings were saved again (or the Mail Provider "
                "changed) after this authorization started, so it may not belong to them. "
                "Nothing was stored.",
            },
            status=409,
        )
    except ConsentFailed as failed:
        return _failure_page(
            request, "The authorization did not complete", failed.error, failed.connection
        )
    grant = completed.grant
    which = " for the backup connection" if completed.connection == Connection.BACKUP else ""
    messages.success(request, f"Authorized as {grant.account or 'the account'}{which}.")
    for warning in completed.warnings:
        messages.warning(request, warning)
    return redirect(CONNECTION_PAGES[completed.connection])


@sensitive_post_parameters(*SECRET_FIELDS)
@require_POST
def check(request: HttpRequest, connection: str = Connection.PRIMARY) -> HttpResponse:
    """Refresh the access token once and report the outcome (proof the grant works)."""
    config = _stored_oauth_settings(request, connection)
    if config is None:
        return redirect(CONNECTION_PAGES[connection])
    transcript = Transcript()
    try:
        token = StoredGrantTokenProvider(config).get_token(transcript, force=True)
    except MailError as err:
        messages.error(request, f"Check failed: {err.message} {err.hint}".strip())
    else:
        detail = " ".join(transcript.steps[-1].details) if transcript.steps else ""
        messages.success(
            request,
            f"Check passed: a new access token was issued for {token.account or 'the account'}. {detail}",
        )
    return redirect(CONNECTION_PAGES[connection])


@sensitive_post_parameters(*SECRET_FIELDS)
@require_POST
def disconnect(request: HttpRequest, connection: str = Connection.PRIMARY) -> HttpResponse:
    """Delete the connection's stored grant (Google: revoke it too, best effort)."""
    config = MailSettings.from_model(MailServerConfig.load(connection))
    grant = delete_grant(config)
    if grant is None:
        messages.info(request, "There was no authorization to disconnect.")
    else:
        messages.success(
            request,
            f"Disconnected: the authorization of {grant.account or 'the account'} was deleted. "
            "Mail over SMTP with OAuth will fail until you authorize again.",
        )
    return redirect(CONNECTION_PAGES[connection])


def _failure_page(
    request: HttpRequest, title: str, err: MailError, connection: str = Connection.PRIMARY
) -> HttpResponse:
    state = grant_state(MailSettings.from_model(MailServerConfig.load(connection)))
    backup = connection == Connection.BACKUP
    return render(
        request,
        "oauth/authorization_failed.html",
        {
            "title": title,
            "error": err,
            "grant_state": state,
            "page_url_name": CONNECTION_PAGES[Connection(connection)],
            "page_title": CONNECTION_PAGE_TITLES[Connection(connection)],
            "start_url_name": "oauth:backup_start" if backup else "oauth:start",
        },
        status=400,
    )
