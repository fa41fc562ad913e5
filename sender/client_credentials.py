"""Microsoft client-credentials tokens (API mode, Microsoft Graph) through MSAL.

One MSAL ``ConfidentialClientApplication`` per configuration, reused: MSAL fetches
the tenant's OpenID discovery document when the app is built, and its token cache
lives in the app. That cache is the only one for these tokens:
``acquire_token_for_client`` answers from it until five minutes before expiry, so
reusing the app means one token request per hour rather than one per message.
"""

from __future__ import annotations

from typing import Any

import msal
import requests

from sender.errors import ConfigurationError
from sender.http import shared_session
from sender.network_errors import http_failure, identity_platform_unavailable
from settings_app.values import AzureEnvironment

from .microsoft_identity import microsoft_error, msal_app
from .tokens import (
    AccessToken,
    ApiTokenProvider,
    PerConfiguration,
    cache_key,
    expires_in,
    jwt_claims,
)

STEP = "Obtain token"
_graph_token_providers: PerConfiguration[MicrosoftClientCredentials] = PerConfiguration()


class MicrosoftClientCredentials(ApiTokenProvider):
    """App-only tokens for one Azure app registration, tenant and scope."""

    def __init__(
        self,
        *,
        tenant: str,
        client_id: str,
        client_secret: str,
        environment: AzureEnvironment,
        scope: str,
        ca_file: str | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__()
        self.authority = f"{environment.authority_host.rstrip('/')}/{tenant}"
        self.source = self.authority
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self.session = shared_session(ca_file, timeout)
        self._app: msal.ConfidentialClientApplication | None = None

    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            self._app = msal_app(
                client_id=self.client_id,
                client_secret=self.client_secret,
                authority=self.authority,
                session=self.session,
                step=STEP,
            )
        return self._app

    def obtain(self) -> tuple[AccessToken, bool]:
        app = self._application()
        try:
            # Answered from MSAL's token cache while the token is good, else fetched.
            result: dict[str, Any] = app.acquire_token_for_client([self.scope])
        except requests.RequestException as err:
            raise http_failure(STEP, err, self.authority, self.session.timeout) from err
        except msal.exceptions.MsalServiceError as err:  # an HTTP 5xx
            raise identity_platform_unavailable(STEP, str(err), "Microsoft") from err
        if "access_token" not in result:
            raise microsoft_error(
                result.get("error", ""), result.get("error_description", ""), step=STEP
            )
        token = AccessToken(
            token=result["access_token"],
            expires_at=expires_in(result.get("expires_in")),
            scopes=(self.scope,),
        )
        return token, result.get("token_source") != "cache"

    def forget_token(self) -> None:
        if self._app is not None:
            cache = self._app.token_cache
            for item in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                cache.remove_at(item)

    def describe(self, token: AccessToken) -> list[str]:
        roles = tuple(jwt_claims(token.token).get("roles", ()))
        details = [f"Application permissions (roles) in the token: {', '.join(roles) or 'none'}"]
        if "Mail.Send" not in roles:
            details.append(
                "Mail.Send is missing: add the Microsoft Graph application permission "
                "Mail.Send to the app and grant admin consent, or sending will be refused."
            )
        return details


def graph_token_provider(
    *,
    tenant: str,
    client_id: str,
    client_secret: str,
    environment: AzureEnvironment,
    ca_file: str | None,
    timeout: float | None,
) -> MicrosoftClientCredentials:
    """The (shared) provider of Graph tokens for these credentials."""
    if not (tenant and client_id and client_secret):
        raise ConfigurationError(
            "Tenant ID, Client ID and Client Secret are all needed for Microsoft Graph.",
            step=STEP,
            hint="Fill them in on the API section of the page.",
        )
    scope = f"{environment.graph_host.rstrip('/')}/.default"
    key = cache_key("graph", tenant, client_id, client_secret, environment, ca_file, timeout)
    return _graph_token_providers.get(
        key,
        lambda: MicrosoftClientCredentials(
            tenant=tenant,
            client_id=client_id,
            client_secret=client_secret,
            environment=environment,
            scope=scope,
            ca_file=ca_file,
            timeout=timeout,
        ),
    )
