"""Google service-account tokens with domain-wide delegation (API mode, Gmail API).

google-auth signs a JWT with the uploaded key and posts it to the key file's
``token_uri``. The credentials object keeps the token it got: that is the only cache
for these tokens, and the provider (kept per key and From Address) keeps the object. The form already refuses a file whose ``token_uri`` is not the
configured one; it is checked again here, because a signed assertion must
never go to another host.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

from django.conf import settings
from google.oauth2 import service_account

from sender.errors import ConfigurationError
from sender.http import shared_session
from settings_app.models import Provider

from .google_identity import refresh_credentials
from .metrics_counters import SERVICE_ACCOUNT, token_request
from .tokens import AccessToken, ApiTokenProvider, PerConfiguration, cache_key, expires_soon

STEP = "Obtain token"
GMAIL_SEND_SCOPE = "https://www.googleapis.com/auth/gmail.send"
_gmail_token_providers: PerConfiguration[ServiceAccountTokens] = PerConfiguration()


class ServiceAccountTokens(ApiTokenProvider):
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
        self.session = shared_session(ca_file, timeout)

    def obtain(self) -> tuple[AccessToken, bool]:
        token = self._current()
        if token.token and not expires_soon(token):
            return token, False
        with token_request(Provider.GOOGLE.value, SERVICE_ACCOUNT):
            refresh_credentials(
                self.credentials, self.session, step=STEP, context={"client_id": self.client_id}
            )
        return self._current(), True

    def _current(self) -> AccessToken:
        expiry = self.credentials.expiry
        return AccessToken(
            token=self.credentials.token or "",
            # google-auth keeps a naive UTC datetime.
            expires_at=expiry.replace(tzinfo=UTC) if expiry else None,
            account=self.subject,
            scopes=tuple(self.credentials.scopes or ()),
        )

    def forget_token(self) -> None:
        self.credentials.token = None


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
    return _gmail_token_providers.get(
        key,
        lambda: ServiceAccountTokens(info, subject=subject, ca_file=ca_file, timeout=timeout),
    )
