"""Microsoft client-credentials tokens (API mode, Microsoft Graph) through MSAL.

One MSAL ``ConfidentialClientApplication`` per configuration, reused: MSAL fetches
the tenant's OpenID discovery document when the app is built, and its token
cache lives in the app, so reusing it means one token request per hour rather
than one per message.
"""

from __future__ import annotations

from typing import Any

import msal
import requests

from sender.diagnosis import http_failure
from sender.errors import ConfigurationError
from sender.http import shared_session
from settings_app.values import AzureEnvironment

from .identity_errors import identity_platform_unavailable, microsoft_error
from .tokens import (
    AccessToken,
    CachedTokenProvider,
    ProviderCache,
    cache_key,
    expires_in,
    jwt_claims,
)

STEP = "Obtain token"
_providers = ProviderCache()


class MicrosoftClientCredentials(CachedTokenProvider):
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
            try:
                # instance_discovery=False: the authority comes from our settings
                # table (national clouds, test fakes), not from Microsoft's list.
                self._app = msal.ConfidentialClientApplication(
                    self.client_id,
                    client_credential=self.client_secret,
                    authority=self.authority,
                    http_client=self.session,
                    instance_discovery=False,
                )
            except ValueError as err:
                # MSAL reports a failed tenant discovery as ValueError; the
                # provider's JSON (with its AADSTS code) is in the message chain.
                text = f"{err} {err.__context__ or ''}"
                code = "AADSTS90002" if "AADSTS" not in text else text
                raise microsoft_error("invalid_request", code, step=STEP) from err
            except requests.RequestException as err:
                raise http_failure(STEP, err, self.authority, self.session.timeout) from err
        return self._app

    def fetch(self) -> AccessToken:
        app = self._application()
        try:
            result: dict[str, Any] = app.acquire_token_for_client([self.scope])
        except requests.RequestException as err:
            raise http_failure(STEP, err, self.authority, self.session.timeout) from err
        except msal.exceptions.MsalServiceError as err:  # an HTTP 5xx
            raise identity_platform_unavailable(STEP, str(err), "Microsoft") from err
        if "access_token" not in result:
            raise microsoft_error(
                result.get("error", ""), result.get("error_description", ""), step=STEP
            )
        claims = jwt_claims(result["access_token"])
        return AccessToken(
            token=result["access_token"],
            expires_at=expires_in(result.get("expires_in")),
            account=claims.get("app_displayname", ""),
            roles=tuple(claims.get("roles", ())),
            scopes=(self.scope,),
        )

    def invalidate(self) -> None:
        super().invalidate()
        if self._app is not None:
            # Also drop MSAL's copy, or it would hand the rejected token back.
            cache = self._app.token_cache
            for item in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                cache.remove_at(item)

    def describe(self, token: AccessToken) -> list[str]:
        roles = ", ".join(token.roles) or "none"
        details = [f"Application permissions (roles) in the token: {roles}"]
        if "Mail.Send" not in token.roles:
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
    return _providers.get(
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
