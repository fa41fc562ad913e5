"""Microsoft client-credentials tokens through MSAL: Microsoft Graph (API mode) and
app-only SMTP XOAUTH2 for Exchange Online (SMTP OAuth with Sign-in: Application).

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

from .identity_errors import microsoft_error
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
    """The ``client_credential`` handed to MSAL, built here only.

    Today the client secret; a certificate (MSAL's ``{"private_key": ..., "thumbprint":
    ...}``) slots in here without touching the callers.
    """
    return client_secret


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
            try:
                # instance_discovery=False: the authority comes from our settings
                # table (national clouds, test fakes), not from Microsoft's list.
                self._app = msal.ConfidentialClientApplication(
                    self.client_id,
                    client_credential=msal_credential(self.client_secret),
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
        if not (self.authority.rsplit("/", 1)[-1] and self.client_id and self.client_secret):
            # Said inside the "Obtain token" step, so Test Mail shows it in place.
            raise ConfigurationError(
                "Tenant ID, Client ID and Client Secret are all needed to get a token.",
                step=STEP,
                hint="Fill them in on the page's Microsoft section.",
            )
        app = self._application()
        try:
            result: dict[str, Any] = app.acquire_token_for_client([self.scope])
        except requests.RequestException as err:
            raise http_failure(STEP, err, self.authority, self.session.timeout) from err
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
        if self.required_role not in token.roles:
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
    """
    scope = environment.smtp_app_scope
    key = cache_key("exchange_smtp", tenant, client_id, client_secret, scope, ca_file, timeout)
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
            required_role="SMTP.SendAsApp",
            role_missing_hint=SMTP_ROLE_MISSING,
            login_refused_hint=APP_ONLY_LOGIN_REFUSED_HINT,
        ),
    )
