"""Google service-account tokens with domain-wide delegation (API mode, Gmail API).

google-auth signs a JWT with the uploaded key and posts it to the key file's
``token_uri``. The form already refuses a file whose ``token_uri`` is not the
configured one; it is checked again here, because a signed assertion must
never go to another host.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
import requests
from django.conf import settings
from google.oauth2 import service_account

from sender.diagnosis import http_failure
from sender.errors import ConfigurationError, MailConnectionError, MailError
from sender.http import shared_session

from .identity_errors import google_error
from .tokens import AccessToken, CachedTokenProvider, ProviderCache, cache_key

STEP = "Obtain token"
GMAIL_SEND_SCOPE = "https://www.googleapis.com/auth/gmail.send"
_providers = ProviderCache()


class ServiceAccountTokens(CachedTokenProvider):
    """Tokens for one service account acting as one Workspace user."""

    def __init__(
        self,
        info: dict[str, Any],
        *,
        subject: str,
        scopes: tuple[str, ...] = (GMAIL_SEND_SCOPE,),
        ca_file: str | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__()
        token_uri = settings.MAILCONFIG_GOOGLE["token_uri"]
        if info.get("token_uri") != token_uri:
            raise ConfigurationError(
                "The JSON private key's token_uri is not Google's token endpoint.",
                step=STEP,
                hint=f"Upload the key file as Google issued it (token_uri {token_uri}).",
            )
        try:
            self.credentials = service_account.Credentials.from_service_account_info(
                info, scopes=list(scopes), subject=subject
            )
        except (ValueError, KeyError) as err:
            raise ConfigurationError(
                "The stored JSON private key cannot be used.",
                step=STEP,
                hint="Upload the service account's JSON key again.",
            ) from err
        self.client_id = str(info.get("client_id", ""))
        self.subject = subject
        self.source = f"{token_uri} for {info.get('client_email', 'the service account')}"
        self.request = google.auth.transport.requests.Request(shared_session(ca_file, timeout))

    def fetch(self) -> AccessToken:
        try:
            self.credentials.refresh(self.request)
        except google.auth.exceptions.RefreshError as err:
            raise refresh_error(err, client_id=self.client_id) from err
        except google.auth.exceptions.TransportError as err:
            cause = err.__cause__ or (err.args[0] if err.args else err)
            if isinstance(cause, requests.RequestException):
                raise http_failure(
                    STEP,
                    cause,
                    settings.MAILCONFIG_GOOGLE["token_uri"],
                    self.request.session.timeout,
                ) from err
            raise MailConnectionError(
                "Google's token endpoint could not be reached.", step=STEP
            ) from err
        expiry = self.credentials.expiry
        return AccessToken(
            token=self.credentials.token,
            # google-auth keeps a naive UTC datetime.
            expires_at=expiry.replace(tzinfo=UTC) if expiry else None,
            account=self.subject,
            scopes=tuple(self.credentials.scopes or ()),
        )


def refresh_error(err: google.auth.exceptions.RefreshError, **context: str) -> MailError:
    """google-auth's RefreshError carries (message, response JSON): read Google's code."""
    data = err.args[1] if len(err.args) > 1 and isinstance(err.args[1], dict) else {}
    error = data.get("error") or str(err.args[0] if err.args else err).split(":")[0]
    description = data.get("error_description") or str(err.args[0] if err.args else "")
    mail_error = google_error(error, description, step=STEP, context=context)
    if getattr(err, "retryable", False):  # google-auth's verdict: a 5xx or 429, already retried
        mail_error.transient = True
    return mail_error


def gmail_token_provider(
    service_account_key: str, *, subject: str, ca_file: str | None, timeout: float | None
) -> ServiceAccountTokens:
    """The (shared) provider of Gmail tokens for this key and From Address."""
    if not service_account_key:
        raise ConfigurationError(
            "No JSON private key is stored for the Gmail API.",
            step=STEP,
            hint="Upload the service account's JSON key on the API section of the page.",
        )
    info = json.loads(service_account_key)
    key = cache_key("gmail", service_account_key, subject, ca_file, timeout)
    return _providers.get(
        key,
        lambda: ServiceAccountTokens(info, subject=subject, ca_file=ca_file, timeout=timeout),
    )
