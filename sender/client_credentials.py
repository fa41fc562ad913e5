"""Microsoft client-credentials tokens through MSAL: Microsoft Graph (API mode) and
app-only SMTP XOAUTH2 for Exchange Online (SMTP OAuth with Sign-in: Application).

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
_exchange_smtp_token_providers: PerConfiguration[MicrosoftClientCredentials] = PerConfiguration()

GRAPH_ROLE_MISSING = (
    "Mail.Send is missing: add the Microsoft Graph application permission Mail.Send to the "
    "app and grant admin consent, or sending will be refused."
)
SMTP_ROLE_MISSING = (
    "SMTP.SendAsApp is missing: add the application permission SMTP.SendAsApp (API "
    "permissions > Add a permission > APIs my organization uses > Office 365 Exchange "
    "Online > Application permissions) and grant admin consent, or the login will be "
    "refused with 535 5.7.3."
)
# Exchange Online answers an app-only XOAUTH2 login it does not accept with 535 5.7.3.
APP_ONLY_LOGIN_REFUSED_HINT = (
    "Exchange Online refused the app's token for the mailbox in Username. App-only SMTP "
    "needs all of: the application permission SMTP.SendAsApp with admin consent; the app "
    "registered in Exchange as a service principal (Exchange Online PowerShell: "
    "New-ServicePrincipal -AppId <Client ID> -ObjectId <object ID of the Enterprise "
    "application>); and access to the mailbox (Add-MailboxPermission -Identity <Username> "
    "-User <that service principal> -AccessRights FullAccess). SMTP AUTH must also be on "
    "for the mailbox. Changes can take up to an hour to apply."
)


def msal_credential(client_secret: str) -> str:
    """The ``client_credential`` handed to MSAL for client credentials, built here only.

    Today the client secret; a certificate (MSAL's ``{"private_key": ..., "thumbprint":
    ...}``) slots in here without touching the callers.
    """
    return client_secret


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
        required_role: str = "Mail.Send",
        role_missing_hint: str = GRAPH_ROLE_MISSING,
        login_refused_hint: str = "",
    ) -> None:
        super().__init__()
        self.authority = f"{environment.authority_host.rstrip('/')}/{tenant}"
        self.source = self.authority
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self.required_role = required_role
        self.role_missing_hint = role_missing_hint
        # What to say when the server (SMTP) refuses a token this provider issued.
        self.login_refused_hint = login_refused_hint
        self.session = shared_session(ca_file, timeout)
        self._app: msal.ConfidentialClientApplication | None = None

    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            self._app = msal_app(
                client_id=self.client_id,
                client_secret=msal_credential(self.client_secret),
                authority=self.authority,
                session=self.session,
                step=STEP,
            )
        return self._app

    def obtain(self) -> tuple[AccessToken, bool]:
        if not (self.authority.rsplit("/", 1)[-1] and self.client_id and self.client_secret):
            # Said inside the "Obtain token" step, so Test Mail shows it in place.
            raise ConfigurationError(
                "Tenant ID, Client ID and Client Secret are all needed to get a token.",
                step=STEP,
                hint="Fill them in on the page's Microsoft section.",
            )
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
        if self.required_role not in roles:
            details.append(self.role_missing_hint)
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


def exchange_smtp_token_provider(
    *,
    tenant: str,
    client_id: str,
    client_secret: str,
    environment: AzureEnvironment,
    ca_file: str | None,
    timeout: float | None,
) -> MicrosoftClientCredentials:
    """The (shared) provider of app-only XOAUTH2 tokens for Exchange Online SMTP.

    Client credentials for the cloud's Exchange resource (``smtp_app_scope``,
    ``https://outlook.office365.com/.default`` in Azure Cloud): no account signs in.
    Missing credentials are reported when a token is asked for, in its transcript step.
    """
    scope = environment.smtp_app_scope
    key = cache_key("exchange_smtp", tenant, client_id, client_secret, scope, ca_file, timeout)
    return _exchange_smtp_token_providers.get(
        key,
        lambda: MicrosoftClientCredentials(
            tenant=tenant,
            client_id=client_id,
            client_secret=client_secret,
            environment=environment,
            scope=scope,
            ca_file=ca_file,
            timeout=timeout,
            required_role="SMTP.SendAsApp",
            role_missing_hint=SMTP_ROLE_MISSING,
            login_refused_hint=APP_ONLY_LOGIN_REFUSED_HINT,
        ),
    )
