"""The two consent providers for SMTP XOAUTH2: build the authorization URL, redeem the
code, refresh, revoke. A provider is a small class plus its facts (allauth's shape);
the flow around it (state, storage, views) is the same for both.
"""

from __future__ import annotations

import logging
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import google.oauth2.credentials
import msal
import requests
from django.conf import settings
from google_auth_oauthlib.flow import Flow
from oauthlib.oauth2.rfc6749.errors import OAuth2Error

from sender.errors import ConfigurationError, GrantInvalid, MailError
from sender.google_identity import google_error, refresh_credentials
from sender.http import RedirectRefused, refuse_redirects, shared_session
from sender.microsoft_identity import microsoft_error, msal_app
from sender.network_errors import http_failure, identity_platform_unavailable
from sender.tokens import PerConfiguration, cache_key, expires_in, jwt_claims
from settings_app.models import Provider
from settings_app.sending_methods import SMTP_SERVER
from settings_app.values import MailSettings

# The settings a grant is made for: changing any of them invalidates it. The SMTP
# server is one of them: its tokens are sent only to the server it was authorized for.
GRANT_FIELDS: dict[str, tuple[str, ...]] = {
    Provider.MICROSOFT: (
        "oauth_provider",
        "oauth_tenant_id",
        "oauth_client_id",
        "oauth_client_secret",
        "oauth_azure_environment",
        "username",
        *SMTP_SERVER,
    ),
    # No Username on purpose: XOAUTH2 signs in as the account that consented (7eb29cc).
    Provider.GOOGLE: ("oauth_provider", "google_client_id", "google_client_secret", *SMTP_SERVER),
}
GOOGLE_SCOPES = [
    "https://mail.google.com/",
    # The account's address, to show who authorized. Full names, because Google
    # answers "email" as userinfo.email and oauthlib treats that as a scope change.
    "openid",
    "https://www.googleapis.com/auth/userinfo.email",
]
# MSAL apps for consent and refresh, kept per configuration: each fetches the tenant's
# discovery document when built. Tokens are not read from their caches: the stored
# grant holds them (oauth.grant).
_consent_msal_apps: PerConfiguration[msal.ConfidentialClientApplication] = PerConfiguration()
logger = logging.getLogger(__name__)


def grant_fingerprint(config: MailSettings) -> str:
    """A hash of the settings a grant belongs to (secrets hashed, never stored)."""
    return config.fingerprint(GRANT_FIELDS[Provider(config.oauth_provider)])


@dataclass(frozen=True)
class Tokens:
    """What a code redemption or a refresh returned (kept in memory only)."""

    access_token: str = field(repr=False)
    expires_at: datetime | None
    refresh_token: str = field(default="", repr=False)
    account: str = ""
    scopes: str = ""
    # Google, consent screen in "Testing": the refresh token stops after 7 days.
    refresh_token_expires_at: datetime | None = None


class ConsentProvider(ABC):
    """One identity provider's side of the SMTP OAuth grant."""

    def __init__(self, config: MailSettings) -> None:
        self.config = config
        self.session = shared_session()

    @abstractmethod
    def start(self, redirect_uri: str, state: str) -> tuple[str, dict[str, Any]]:
        """The authorization URL, and what must be kept server-side for the callback."""

    @abstractmethod
    def redeem(self, flow: dict[str, Any], params: dict[str, str]) -> Tokens:
        """Exchange the callback's code for tokens; raise ``MailError``."""

    @abstractmethod
    def refresh(self, refresh_token: str) -> Tokens:
        """A new access token (and maybe a rotated refresh token); raise ``MailError``."""

    def revoke(self, refresh_token: str) -> None:  # noqa: B027  (optional: Microsoft has none)
        """Tell the provider to forget the grant, best effort (not every provider can)."""

    @abstractmethod
    def callback_error(self, error: str, description: str, redirect_uri: str) -> MailError:
        """The error for ``error`` / ``error_description`` coming back on the callback."""


class MicrosoftConsent(ConsentProvider):
    """Microsoft identity platform, authorization code with PKCE through MSAL."""

    @property
    def scope(self) -> str:
        return self.config.smtp_azure.smtp_scope

    def app(self, step: str) -> msal.ConfidentialClientApplication:
        config = self.config
        if not (config.oauth_tenant_id and config.oauth_client_id and config.oauth_client_secret):
            raise ConfigurationError(
                "Tenant ID, Client ID and Client Secret are needed to authorize.",
                step=step,
                hint="Fill them in and save the settings.",
            )
        authority = f"{config.smtp_azure.authority_host.rstrip('/')}/{config.oauth_tenant_id}"
        key = cache_key(authority, config.oauth_client_id, config.oauth_client_secret)
        return _consent_msal_apps.get(
            key,
            lambda: msal_app(
                client_id=config.oauth_client_id,
                client_secret=config.oauth_client_secret,
                authority=authority,
                session=self.session,
                step=step,
            ),
        )

    def start(self, redirect_uri: str, state: str) -> tuple[str, dict[str, Any]]:
        app = self.app("Authorize")
        with warnings.catch_warnings():
            # MSAL recommends form_post, but that cross-site POST arrives without the
            # SameSite=Lax session cookie, so the callback could not check the state.
            warnings.filterwarnings("ignore", message="response_mode='form_post'")
            # MSAL adds offline_access, openid and profile, PKCE (S256) and a nonce.
            flow = app.initiate_auth_code_flow(
                scopes=[self.scope],
                redirect_uri=redirect_uri,
                state=state,
                login_hint=self.config.username or None,
                response_mode="query",
            )
        return flow["auth_uri"], flow

    def redeem(self, flow: dict[str, Any], params: dict[str, str]) -> Tokens:
        step = "Redeem authorization code"
        try:
            result = self.app(step).acquire_token_by_auth_code_flow(
                flow, params, scopes=[self.scope]
            )
        except ValueError as err:  # MSAL: state or nonce mismatch
            raise MailError("The authorization response did not match.", step=step) from err
        except requests.RequestException as err:
            raise http_failure(
                step, err, self.config.smtp_azure.authority_host, self.session.timeout
            ) from err
        return self._tokens(result, step)

    def refresh(self, refresh_token: str) -> Tokens:
        step = "Obtain token"
        try:
            result = self.app(step).acquire_token_by_refresh_token(refresh_token, [self.scope])
        except requests.RequestException as err:
            raise http_failure(
                step, err, self.config.smtp_azure.authority_host, self.session.timeout
            ) from err
        except msal.exceptions.MsalServiceError as err:  # an HTTP 5xx
            raise identity_platform_unavailable(step, str(err), "Microsoft") from err
        if result.get("error") == "invalid_grant":
            raise GrantInvalid.from_error(
                microsoft_error("invalid_grant", result.get("error_description", ""), step=step)
            )
        return self._tokens(result, step)

    def _tokens(self, result: dict[str, Any], step: str) -> Tokens:
        if "access_token" not in result:
            raise microsoft_error(
                result.get("error", ""), result.get("error_description", ""), step=step
            )
        claims = result.get("id_token_claims") or {}
        return Tokens(
            access_token=result["access_token"],
            expires_at=expires_in(result.get("expires_in")),
            refresh_token=result.get("refresh_token", ""),
            account=claims.get("preferred_username") or claims.get("email") or "",
            scopes=result.get("scope", ""),
        )

    def callback_error(self, error: str, description: str, redirect_uri: str) -> MailError:
        return microsoft_error(
            error, description, step="Authorize", context={"redirect_uri": redirect_uri}
        )


class GoogleConsent(ConsentProvider):
    """Google OAuth for a web client, with PKCE, through google-auth-oauthlib."""

    def _flow(self, redirect_uri: str, code_verifier: str | None = None) -> Flow:
        google = settings.MAILCONFIG_GOOGLE
        if not (self.config.google_client_id and self.config.google_client_secret):
            raise ConfigurationError(
                "Client ID and Client Secret are needed to authorize with Google.",
                step="Authorize",
                hint="Fill them in and press Configure.",
            )
        client = {
            "web": {
                "client_id": self.config.google_client_id,
                "client_secret": self.config.google_client_secret,
                "auth_uri": google["auth_uri"],
                "token_uri": google["token_uri"],
            }
        }
        flow = Flow.from_client_config(
            client, scopes=GOOGLE_SCOPES, redirect_uri=redirect_uri, code_verifier=code_verifier
        )
        # The code exchange goes through oauthlib's own session: it must not follow a
        # redirect either (the code, the verifier and the client secret would go along).
        flow.oauth2session.hooks["response"].append(refuse_redirects)
        return flow

    def start(self, redirect_uri: str, state: str) -> tuple[str, dict[str, Any]]:
        flow = self._flow(redirect_uri)
        url, _ = flow.authorization_url(
            access_type="offline",
            prompt="consent",
            state=state,
            login_hint=self.config.from_address or None,
        )
        return url, {"code_verifier": flow.code_verifier, "redirect_uri": redirect_uri}

    def redeem(self, flow: dict[str, Any], params: dict[str, str]) -> Tokens:
        step = "Redeem authorization code"
        oauth_flow = self._flow(flow["redirect_uri"], flow["code_verifier"])
        try:
            with warnings.catch_warnings():
                # oauthlib raises a Warning (as an exception) when scopes were narrowed.
                warnings.simplefilter("error")
                token = oauth_flow.fetch_token(
                    code=params.get("code", ""),
                    verify=self.session.ca_file or True,
                    timeout=self.session.timeout,
                )
        except requests.RequestException as err:
            raise http_failure(
                step, err, settings.MAILCONFIG_GOOGLE["token_uri"], self.session.timeout
            ) from err
        except Warning as err:
            raise MailError(
                "Google granted fewer permissions than requested.",
                step=step,
                code="scope_changed",
                hint="Authorize again and allow full access to Gmail (https://mail.google.com/).",
            ) from err
        except OAuth2Error as err:  # the token endpoint said no
            raise google_error(err.error, err.description or "", step=step) from err
        claims = jwt_claims(token.get("id_token", ""))
        expires_at = token.get("expires_at")
        return Tokens(
            access_token=token["access_token"],
            expires_at=datetime.fromtimestamp(expires_at, UTC) if expires_at else None,
            refresh_token=token.get("refresh_token", ""),
            account=claims.get("email", ""),
            scopes=" ".join(token.get("scope") or ()),
            refresh_token_expires_at=refresh_token_expiry(token.get("refresh_token_expires_in")),
        )

    def refresh(self, refresh_token: str) -> Tokens:
        credentials = google.oauth2.credentials.Credentials(
            None,
            refresh_token=refresh_token,
            # Passed explicitly: google-auth would otherwise use Google's own endpoint.
            token_uri=settings.MAILCONFIG_GOOGLE["token_uri"],
            client_id=self.config.google_client_id,
            client_secret=self.config.google_client_secret,
        )
        try:
            refresh_credentials(credentials, self.session, step="Obtain token")
        except MailError as err:
            if err.code == "invalid_grant":
                raise GrantInvalid.from_error(err) from err
            raise
        expiry = credentials.expiry
        return Tokens(
            access_token=credentials.token,
            expires_at=expiry.replace(tzinfo=UTC) if expiry else None,
            refresh_token=credentials.refresh_token or "",
        )

    def revoke(self, refresh_token: str) -> None:
        # Best effort: the grant is deleted here whatever Google says. The shared
        # VerifiedSession puts MAILCONFIG_TIMEOUT on the request, so Disconnect never hangs.
        try:
            self.session.post(
                settings.MAILCONFIG_GOOGLE["revoke_uri"], data={"token": refresh_token}
            )
        except RedirectRefused as err:
            # Not followed (the refresh token would go along); the operator should know.
            logger.warning("Revoking the Google grant failed: %s", err.mail_error("Revoke").message)
        except requests.RequestException:
            pass

    def callback_error(self, error: str, description: str, redirect_uri: str) -> MailError:
        return google_error(
            error, description, step="Authorize", context={"redirect_uri": redirect_uri}
        )


def refresh_token_expiry(seconds: object) -> datetime | None:
    """When a refresh token stops working, from ``refresh_token_expires_in`` (Google sends it
    when the project's consent screen is in Testing: 7 days), or None without a limit."""
    try:
        lifetime = float(seconds)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return datetime.now(UTC) + timedelta(seconds=lifetime) if lifetime > 0 else None


def consent_provider(config: MailSettings, provider: str | None = None) -> ConsentProvider:
    """The consent provider named ``provider``, by default the configuration's SMTP OAuth one."""
    if (provider or config.oauth_provider) == Provider.GOOGLE:
        return GoogleConsent(config)
    return MicrosoftConsent(config)
