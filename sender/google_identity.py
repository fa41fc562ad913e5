"""Google's OAuth token endpoint: its known errors in plain words, and refreshing
google-auth credentials with their failures explained (the service account here, the
SMTP consent in ``oauth.consent``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import google.auth.credentials
import google.auth.exceptions
import google.auth.transport.requests
import requests
from django.conf import settings

from sender.errors import (
    AuthenticationError,
    AuthorizationError,
    ConfigurationError,
    MailConnectionError,
    MailError,
)
from sender.http import VerifiedSession
from sender.known_failures import RECONNECT, TEMPORARY_OAUTH_ERRORS, KnownFailure, explain
from sender.network_errors import http_failure

# Matched by the OAuth ``error``; invalid_grant means different things depending on
# the grant, told apart by the description's text.
GOOGLE_IDENTITY_FAILURES: tuple[KnownFailure, ...] = (
    KnownFailure(
        "unauthorized_client",
        AuthorizationError,
        "Google refused a token to the service account: domain-wide delegation is missing.",
        "In the Google Admin console open Security > Access and data control > API controls "
        "> Manage Domain Wide Delegation, and add the service account's Client ID "
        "{client_id} with the scope https://www.googleapis.com/auth/gmail.send. A new "
        "delegation can take from a few minutes up to 24 hours to take effect.",
    ),
    KnownFailure(
        "invalid_client",
        AuthenticationError,
        "Google did not accept the Client ID or Client Secret.",
        "Copy both again from Google Cloud console > APIs & Services > Credentials > the "
        "OAuth 2.0 Client ID (type Web application).",
    ),
    KnownFailure(
        "redirect_uri_mismatch",
        ConfigurationError,
        "The redirect URI is not registered for this Google OAuth client.",
        "Add exactly {redirect_uri} to the client's Authorized redirect URIs in Google "
        "Cloud console > APIs & Services > Credentials, then try again.",
    ),
    KnownFailure(
        "access_denied",
        AuthorizationError,
        "The authorization was declined at Google.",
        "Authorize again and allow access; if the consent screen is 'Internal', sign in with "
        "an account of that Workspace.",
    ),
    KnownFailure(
        "admin_policy_enforced",
        AuthorizationError,
        "The Google Workspace administrator does not allow this app.",
        "Ask the Workspace administrator to trust the app under API controls.",
    ),
    KnownFailure(
        "invalid_scope",
        ConfigurationError,
        "Google refused the requested scope.",
        "Enable the Gmail API for the project and add the scope to the consent screen.",
    ),
    KnownFailure(
        "invalid_grant",
        ConfigurationError,
        "Google does not know the From Address as a user of the Workspace domain.",
        "The From Address must be a Google Workspace user of the domain that delegated "
        "access (consumer @gmail.com addresses cannot be impersonated).",
        contains="invalid email or user id",
    ),
    KnownFailure(
        "invalid_grant",
        AuthenticationError,
        "Google rejected the service account key.",
        "The key may have been deleted or disabled: create a new JSON key for the service "
        "account and upload it.",
        contains="invalid jwt signature",
    ),
    KnownFailure(
        "invalid_grant",
        AuthenticationError,
        "Google says the authorization is no longer valid (expired or revoked).",
        RECONNECT + " Refresh tokens stop working when the user revokes access or changes the "
        "password, and after 7 days while the consent screen is in 'Testing'.",
    ),
)


def google_error(
    error: str,
    description: str = "",
    *,
    step: str,
    context: Mapping[str, str] | None = None,
    retryable: bool = False,
) -> MailError:
    """The error for a Google OAuth ``error`` / ``error_description`` pair; ``retryable``:
    google-auth's verdict that the answer was temporary."""
    text = description or error
    return explain(
        GOOGLE_IDENTITY_FAILURES,
        error,
        text=description or "",
        step=step,
        code=error,
        provider_text=text,
        unknown=f"Google answered with an error: {text}",
        context=context,
        transient=retryable or error in TEMPORARY_OAUTH_ERRORS or None,
    )


def refresh_error(
    err: google.auth.exceptions.RefreshError, *, step: str, context: Mapping[str, str] | None = None
) -> MailError:
    """google-auth's RefreshError carries (message, response JSON): read Google's code."""
    data = err.args[1] if len(err.args) > 1 and isinstance(err.args[1], dict) else {}
    error = data.get("error") or str(err.args[0] if err.args else err).split(":")[0]
    description = data.get("error_description") or str(err.args[0] if err.args else "")
    # google-auth's ``retryable``: a 5xx or 429, already retried.
    return google_error(
        error, description, step=step, context=context, retryable=getattr(err, "retryable", False)
    )


# google-auth's transport over each shared session, made once: a Request closes its
# session when it is garbage-collected (its __del__), so a throw-away one would drop
# the session's kept-alive connections after every refresh.
_transports: dict[VerifiedSession, google.auth.transport.requests.Request] = {}
_transports_lock = threading.Lock()


def google_transport(session: VerifiedSession) -> google.auth.transport.requests.Request:
    """The google-auth transport that sends through ``session`` (one per session, kept)."""
    with _transports_lock:
        if session not in _transports:
            _transports[session] = google.auth.transport.requests.Request(session)
        return _transports[session]


def refresh_credentials(
    credentials: google.auth.credentials.Credentials,
    session: VerifiedSession,
    *,
    step: str,
    context: Mapping[str, str] | None = None,
) -> None:
    """``credentials.refresh()`` through our session, any failure raised as a ``MailError``."""
    try:
        credentials.refresh(google_transport(session))
    except google.auth.exceptions.RefreshError as err:
        raise refresh_error(err, step=step, context=context) from err
    except google.auth.exceptions.TransportError as err:
        cause = err.__cause__ or (err.args[0] if err.args else err)
        if isinstance(cause, requests.RequestException):
            token_uri = settings.MAILCONFIG_GOOGLE["token_uri"]
            raise http_failure(step, cause, token_uri, session.timeout) from err
        raise MailConnectionError(
            "Google's token endpoint could not be reached.", step=step
        ) from err
