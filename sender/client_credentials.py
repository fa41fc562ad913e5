"""Microsoft client-credentials tokens (API mode, Microsoft Graph) through MSAL.

An Azure app proves who it is with a client secret or a certificate. ``AppCredential``
is the one place that turns either into what MSAL takes: every app-only token
(Graph, and app-only SMTP) gets certificates through it.

One MSAL ``ConfidentialClientApplication`` per configuration, reused: MSAL fetches
the tenant's OpenID discovery document when the app is built, and its token
cache lives in the app, so reusing it means one token request per hour rather
than one per message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from sender.diagnosis import http_failure
from sender.errors import ConfigurationError
from sender.http import shared_session
from settings_app.models import CredentialType
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


class MicrosoftClientCredentials(CachedTokenProvider):
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
    ) -> None:
        super().__init__()
        self.authority = f"{environment.authority_host.rstrip('/')}/{tenant}"
        self.source = self.authority
        self.client_id = client_id
        self.credential = credential
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
                    client_credential=self.credential.for_msal(),
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
        details = [
            self.credential.describe(),
            f"Application permissions (roles) in the token: {roles}",
        ]
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
    key = cache_key(
        "graph",
        tenant,
        client_id,
        credential.secret,
        credential.certificate,
        environment,
        ca_file,
        timeout,
    )
    return _providers.get(
        key,
        lambda: MicrosoftClientCredentials(
            tenant=tenant,
            client_id=client_id,
            credential=credential,
            environment=environment,
            scope=scope,
            ca_file=ca_file,
            timeout=timeout,
        ),
    )
