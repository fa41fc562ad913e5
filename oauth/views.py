"""The consent flow's views: thin, they parse the request and call ``oauth.flow``."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_POST

from sender.errors import MailError
from sender.transcript import Transcript
from settings_app.models import SECRET_FIELDS, MailServerConfig
from settings_app.values import MailSettings

from .flow import SettingsChanged, begin, complete
from .grant import StoredGrantTokenProvider, delete_grant, grant_state
from .state import StateRefused

PAGE = "settings_app:mail_server"


def _stored_oauth_settings(request: HttpRequest) -> MailSettings | None:
    config = MailSettings.from_model(MailServerConfig.load())
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
def start(request: HttpRequest) -> HttpResponse:
    """Authorize / Reconnect / Try again: go to the provider's consent page."""
    config = _stored_oauth_settings(request)
    if config is None:
        return redirect(PAGE)
    try:
        return begin(request, config)
    except MailError as err:
        return _failure_page(request, "The authorization could not start", err)


@require_GET
def callback(request: HttpRequest) -> HttpResponse:
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
    except MailError as err:
        return _failure_page(request, "The authorization did not complete", err)
    grant = completed.grant
    messages.success(request, f"Authorized as {grant.account or 'the account'}.")
    for warning in completed.warnings:
        messages.warning(request, warning)
    return redirect(PAGE)


@sensitive_post_parameters(*SECRET_FIELDS)
@require_POST
def check(request: HttpRequest) -> HttpResponse:
    """Refresh the access token once and report the outcome (proof the grant works)."""
    config = _stored_oauth_settings(request)
    if config is None:
        return redirect(PAGE)
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
    return redirect(PAGE)


@sensitive_post_parameters(*SECRET_FIELDS)
@require_POST
def disconnect(request: HttpRequest) -> HttpResponse:
    """Delete the stored grant (Google: revoke it too, best effort)."""
    config = MailSettings.from_model(MailServerConfig.load())
    grant = delete_grant(config)
    if grant is None:
        messages.info(request, "There was no authorization to disconnect.")
    else:
        messages.success(
            request,
            f"Disconnected: the authorization of {grant.account or 'the account'} was deleted. "
            "Mail over SMTP with OAuth will fail until you authorize again.",
        )
    return redirect(PAGE)


def _failure_page(request: HttpRequest, title: str, err: MailError) -> HttpResponse:
    state = grant_state(MailSettings.from_model(MailServerConfig.load()))
    return render(
        request,
        "oauth/authorization_failed.html",
        {"title": title, "error": err, "grant_state": state},
        status=400,
    )
