"""Microsoft client-credentials tokens through MSAL: Microsoft Graph (API mode) and
app-only SMTP XOAUTH2 for Exchange Online (SMTP OAuth with Sign-in: Application).

An Azure app proves who it is with a client secret or a certificate. ``AppCredential``
is the one place that turns either into what MSAL takes: every app-only token
(Graph, and app-only SMTP) gets certificates through it.

One MSAL ``ConfidentialClientApplication`` per configuration, reused: MSAL fetches
the tenant's OpenID discovery document when the app is built, and its token cache
lives in the app. That cache is the only one for these tokens:
``acquire_token_for_client`` answers from it until five minutes before expiry, so
reusing the app means one token request per hour rather than one per message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from sender.errors import ConfigurationError
from sender.http import shared_session
from sender.network_errors import http_failure, identity_platform_unavailable
from settings_app.models import CredentialType, Provider
from settings_app.values import AzureEnvironment

from .metrics_counters import CLIENT_CREDENTIALS, count_token_request
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
MICROSOFT = Provider.MICROSOFT.value
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


PEM_CERTIFICATE = re.compile(
    r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\s*", re.DOTALL
)


@dataclass(frozen=True, repr=False)
class AppCredential:
    """What an Azure app signs in with: a client secret, or a certificate with its key.

    ``certificate`` is the stored PEM (settings_app.certificates): the private key,
    then the certificate. Never in a repr, a log or a transcript.
    """

    secret: str = ""
    certificate: str = ""

    @classmethod
    def chosen(cls, credential_type: str, *, secret: str, certificate: str) -> AppCredential:
        """The credential the page's Credential choice selects (the other one is ignored)."""
        if credential_type == CredentialType.CERTIFICATE:
            return cls(certificate=certificate)
        return cls(secret=secret)

    @property
    def is_certificate(self) -> bool:
        return bool(self.certificate)

    def __bool__(self) -> bool:
        return bool(self.secret or self.certificate)

    def __repr__(self) -> str:
        return f"AppCredential({'certificate' if self.is_certificate else 'secret'})"

    @property
    def name(self) -> str:
        """The field an admin fills in for it, for messages."""
        return "Certificate" if self.is_certificate else "Client Secret"

    def _certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self._certificate_pem().encode())

    def _certificate_pem(self) -> str:
        match = PEM_CERTIFICATE.search(self.certificate)
        return match.group(0) if match else ""

    def for_msal(self) -> str | dict[str, str]:
        """MSAL's ``client_credential``.

        A certificate goes as private key + public certificate and no "thumbprint":
        MSAL 1.35+ then signs the client assertion with PS256 and names the certificate
        by its SHA-256 thumbprint (``x5t#S256``), which Entra ID accepts; a "thumbprint"
        entry would make it fall back to SHA-1 (``x5t``) and RS256.
        """
        if not self.is_certificate:
            return self.secret
        cert_pem = self._certificate_pem()
        return {
            "private_key": self.certificate.replace(cert_pem, ""),
            "public_certificate": cert_pem,
        }

    def secrets(self) -> list[str]:
        """What a transcript must hide: the secret, or the key part of the certificate PEM."""
        if not self.is_certificate:
            return [self.secret] if self.secret else []
        return [self.certificate.replace(self._certificate_pem(), "").strip()]

    def describe(self) -> str:
        """One transcript line saying which credential signed in (facts, no secret)."""
        if not self.is_certificate:
            return "Signed in with the client secret."
        certificate = self._certificate()
        thumbprint = certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303
        return (
            f"Signed in with the certificate {certificate.subject.rfc4514_string()} "
            f"(thumbprint {thumbprint}, valid until "
            f"{certificate.not_valid_after_utc:%Y-%m-%d}): a client assertion signed with its "
            "private key, naming it by its SHA-256 thumbprint (x5t#S256)."
        )


class MicrosoftClientCredentials(ApiTokenProvider):
    """App-only tokens for one Azure app registration, tenant and scope."""

    def __init__(
        self,
        *,
        tenant: str,
        client_id: str,
        credential: AppCredential,
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
        self.credential = credential
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
                client_secret=self.credential.for_msal(),
                authority=self.authority,
                session=self.session,
                step=STEP,
            )
        return self._app

    def obtain(self) -> tuple[AccessToken, bool]:
        if not (self.authority.rsplit("/", 1)[-1] and self.client_id and self.credential):
            # Said inside the "Obtain token" step, so Test Mail shows it in place.
            raise ConfigurationError(
                f"Tenant ID, Client ID and {self.credential.name} are all needed to get a token.",
                step=STEP,
                hint="Fill them in on the page's Microsoft section.",
            )
        app = self._application()
        try:
            # Answered from MSAL's token cache while the token is good, else fetched.
            result: dict[str, Any] = app.acquire_token_for_client([self.scope])
        except requests.RequestException as err:
            count_token_request(MICROSOFT, CLIENT_CREDENTIALS, issued=False)
            raise http_failure(STEP, err, self.authority, self.session.timeout) from err
        except msal.exceptions.MsalServiceError as err:  # an HTTP 5xx
            count_token_request(MICROSOFT, CLIENT_CREDENTIALS, issued=False)
            raise identity_platform_unavailable(STEP, str(err), "Microsoft") from err
        if result.get("token_source") != "cache":  # the token endpoint answered
            count_token_request(MICROSOFT, CLIENT_CREDENTIALS, issued="access_token" in result)
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
        details = [
            self.credential.describe(),
            f"Application permissions (roles) in the token: {', '.join(roles) or 'none'}",
        ]
        if self.required_role not in roles:
            details.append(self.role_missing_hint)
        return details


def graph_token_provider(
    *,
    tenant: str,
    client_id: str,
    credential: AppCredential,
    environment: AzureEnvironment,
    ca_file: str | None,
    timeout: float | None,
) -> MicrosoftClientCredentials:
    """The (shared) provider of Graph tokens for these credentials."""
    if not (tenant and client_id and credential):
        raise ConfigurationError(
            f"Tenant ID, Client ID and {credential.name} are all needed for Microsoft Graph.",
            step=STEP,
            hint="Fill them in on the API section of the page.",
        )
    scope = f"{environment.graph_host.rstrip('/')}/.default"
    return _shared_provider(
        _graph_token_providers, tenant, client_id, credential, environment, scope, ca_file, timeout
    )


def exchange_smtp_token_provider(
    *,
    tenant: str,
    client_id: str,
    credential: AppCredential,
    environment: AzureEnvironment,
    ca_file: str | None,
    timeout: float | None,
) -> MicrosoftClientCredentials:
    """The (shared) provider of app-only XOAUTH2 tokens for Exchange Online SMTP.

    Client credentials for the cloud's Exchange resource (``smtp_app_scope``,
    ``https://outlook.office365.com/.default`` in Azure Cloud): no account signs in.
    Missing credentials are reported when a token is asked for, in its transcript step.
    """
    return _shared_provider(
        _exchange_smtp_token_providers,
        tenant,
        client_id,
        credential,
        environment,
        environment.smtp_app_scope,
        ca_file,
        timeout,
        required_role="SMTP.SendAsApp",
        role_missing_hint=SMTP_ROLE_MISSING,
        login_refused_hint=APP_ONLY_LOGIN_REFUSED_HINT,
    )


def _shared_provider(
    providers: PerConfiguration[MicrosoftClientCredentials],
    tenant: str,
    client_id: str,
    credential: AppCredential,
    environment: AzureEnvironment,
    scope: str,
    ca_file: str | None,
    timeout: float | None,
    **checks: str,
) -> MicrosoftClientCredentials:
    # One provider (one MSAL app and its token cache) per app, credential, cloud and scope.
    key = cache_key(
        tenant,
        client_id,
        credential.secret,
        credential.certificate,
        environment,
        scope,
        ca_file,
        timeout,
    )
    return providers.get(
        key,
        lambda: MicrosoftClientCredentials(
            tenant=tenant,
            client_id=client_id,
            credential=credential,
            environment=environment,
            scope=scope,
            ca_file=ca_file,
            timeout=timeout,
            **checks,
        ),
    )
