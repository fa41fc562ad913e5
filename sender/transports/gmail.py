"""Gmail API (API mode): ``POST gmail/v1/users/me/messages/send`` as the delegated user."""

from __future__ import annotations

import base64

import requests
from django.conf import settings

from sender.errors import (
    AuthenticationError,
    AuthorizationError,
    ConfigurationError,
    MailError,
    RateLimited,
    RecipientsRefused,
)
from sender.known_failures import KnownFailure
from sender.service_account import ServiceAccountTokens, gmail_token_provider
from sender.tokens import AccessToken

from .http_api import HttpApiTransport, api_error, error_object

# Matched by HTTP status and the error's reason (errors[0].reason, else status).
GMAIL_FAILURES: tuple[KnownFailure, ...] = (
    KnownFailure(
        400,
        ConfigurationError,
        "Gmail cannot send from this account (failedPrecondition).",
        "The From Address must be a Google Workspace user with Gmail turned on (a licence "
        "that includes Gmail); delegation cannot send from consumer accounts.",
        contains="failedprecondition",
    ),
    KnownFailure(
        400,
        RecipientsRefused,
        "Gmail refused the message as invalid.",
        "Check the recipients' addresses and the From Address.",
        contains="invalidargument",
    ),
    KnownFailure(
        401,
        AuthenticationError,
        "Gmail rejected the access token.",
        "Upload the service account key again; check the delegation's scope.",
    ),
    KnownFailure(
        403,
        AuthorizationError,
        "Gmail refused to send for this service account.",
        "Enable the Gmail API in the service account's Google Cloud project (APIs & Services "
        "> Library > Gmail API), and delegate the scope "
        "https://www.googleapis.com/auth/gmail.send to its Client ID.",
    ),
    KnownFailure(
        429,
        RateLimited,
        "Gmail's sending limit was reached.",
        "Workspace accounts may send about 2,000 messages a day; sending resumes later.",
    ),
)


def gmail_error(response: requests.Response) -> MailError:
    """The error a Gmail API response means, read from Google's error JSON."""
    body = error_object(response)
    errors = body.get("errors") or [{}]
    reason = errors[0].get("reason", "") or body.get("status", "")
    return api_error(
        response,
        GMAIL_FAILURES,
        response.status_code,
        text=reason,
        code=reason or str(response.status_code),
        api_name="The Gmail API",
    )


class GmailTransport(HttpApiTransport):
    """Sends as the From Address through the service account's delegated access."""

    api_name = "the Gmail API"

    @property
    def endpoint(self) -> str:
        base = settings.MAILCONFIG_GOOGLE["gmail_api"].rstrip("/")
        return f"{base}/gmail/v1/users/me/messages/send"

    @property
    def identity_url(self) -> str:
        return settings.MAILCONFIG_GOOGLE["token_uri"]

    def token_provider(self) -> ServiceAccountTokens:
        return gmail_token_provider(
            self.config.service_account_key,
            subject=self.config.from_address,
            ca_file=self.ca_file,
            timeout=self.timeout,
        )

    def post(self, token: AccessToken, raw: bytes) -> requests.Response:
        return self.session.post(
            self.endpoint,
            json={"raw": base64.urlsafe_b64encode(raw).decode("ascii")},
            headers={"Authorization": f"Bearer {token.token}"},
        )

    def accepted(self, response: requests.Response) -> str | None:
        if response.status_code != 200:
            return None
        try:
            return f"message id {response.json()['id']}"
        except (ValueError, KeyError):
            return "200 OK"

    def error_for(self, response: requests.Response) -> MailError:
        return gmail_error(response)
