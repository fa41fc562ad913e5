"""A fake Microsoft identity platform and Graph ``sendMail``, speaking the real protocols.

Per-tenant OpenID discovery, the token endpoint (client credentials, authorization
code with PKCE, refresh tokens that rotate), an authorize endpoint that consents at
once and redirects back, and Graph's MIME ``sendMail``. Errors carry the real
AADSTS codes and JSON shapes. ``sendMail`` answers for missing mailboxes (404) and
mailboxes an Application Access Policy withholds (403), and takes the JSON form too,
refusing a message without recipients as Exchange does.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import trustme
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .base import (
    ProviderFake,
    Request,
    Response,
    Route,
    SentMail,
    b64url,
    jwt_parts,
    s256,
    unsigned_jwt,
)

JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class App:
    """An app registration in a tenant."""

    client_id: str
    secret: str
    roles: tuple[str, ...] = ("Mail.Send",)
    redirect_uris: tuple[str, ...] = ()
    expired_secret: bool = False
    # Certificates registered under Certificates & secrets (public part only, as in Entra ID).
    certificates: list[x509.Certificate] = field(default_factory=list)


@dataclass
class Tenant:
    tenant_id: str
    domains: set[str] = field(default_factory=set)
    apps: dict[str, App] = field(default_factory=dict)
    users: set[str] = field(default_factory=set)


@dataclass
class Issued:
    """An access token the fake issued."""

    token: str
    expires: float
    scope: str
    roles: tuple[str, ...] = ()
    user: str = ""
    grant: str = ""


def aad_error(status: int, error: str, code: int, text: str) -> Response:
    return Response.json(
        {
            "error": error,
            "error_description": f"AADSTS{code}: {text} Trace ID: {uuid.uuid4()} "
            f"Correlation ID: {uuid.uuid4()} Timestamp: 2026-11-24 10:00:00Z",
            "error_codes": [code],
            "timestamp": "2026-11-24 10:00:00Z",
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        },
        status,
    )


class MicrosoftFake(ProviderFake):
    """Microsoft identity platform + Graph on one local HTTPS server."""

    token_lifetime = 3600

    def __init__(self, ca: trustme.CA) -> None:
        super().__init__(ca)
        self.reset()

    def reset(self) -> None:
        super().reset()
        self.tenants: dict[str, Tenant] = {}
        self.issued: dict[str, Issued] = {}
        self.sent_json: list[tuple[str, dict[str, Any]]] = []
        # Graph's answers about mailboxes: none such (404), or kept from the app by an
        # Application Access Policy (403).
        self.missing_mailboxes: set[str] = set()
        self.policy_denied_mailboxes: set[str] = set()
        self.rotate_invalidates_old = False
        # Discovery names endpoints on the host the client asked for (as each national
        # cloud's authority does), so a test can tell two clouds pointed at this fake apart.
        self.endpoints_on_request_host = False
        # The header and claims of every client assertion that passed (for tests to inspect).
        self.assertions: list[tuple[dict[str, Any], dict[str, Any]]] = []

    # Set-up ------------------------------------------------------------------
    def add_app(
        self,
        tenant: str,
        client_id: str,
        secret: str,
        *,
        roles: tuple[str, ...] = ("Mail.Send",),
        redirect_uris: tuple[str, ...] = (),
        expired_secret: bool = False,
        domain: str = "contoso.com",
    ) -> App:
        record = self.tenants.setdefault(tenant, Tenant(tenant, {domain}))
        app = App(client_id, secret, roles, redirect_uris, expired_secret)
        record.apps[client_id] = app
        return app

    def add_certificate(self, tenant: str, client_id: str, certificate: x509.Certificate) -> None:
        """Register a certificate's public part for an app (Certificates & secrets > Upload)."""
        self.tenants[tenant].apps[client_id].certificates.append(certificate)

    def add_user(self, tenant: str, username: str) -> None:
        self.tenants[tenant].users.add(username.lower())

    def issue_user_tokens(
        self, tenant: str, client_id: str, user: str, scope: str
    ) -> dict[str, Any]:
        """A token response for ``user``, as if they had consented elsewhere (another process)."""
        record = self.tenants[tenant]
        return self._user_tokens(record, record.apps[client_id], user, scope)

    def revoke_refresh_tokens(self) -> None:
        for grant in self.refresh_tokens.values():
            grant["revoked"] = True

    def token_is_valid(self, token: str, scope_contains: str | None = None) -> bool:
        issued = self.issued.get(token)
        return (
            issued is not None
            and issued.expires > time.time()
            and (scope_contains is None or scope_contains in issued.scope)
        )

    def app_only_token(self, token: str, scope: str) -> Issued | None:
        """The unexpired token this fake issued for client credentials with ``scope``, or None."""
        issued = self.issued.get(token)
        if issued is None or issued.expires <= time.time() or issued.grant != "client_credentials":
            return None
        return issued if issued.scope.split() == [scope] else None

    def token_user(self, token: str) -> str:
        issued = self.issued.get(token)
        return issued.user if issued else ""

    # Routes ------------------------------------------------------------------
    def routes(self) -> list[tuple[str, str, str, Route]]:
        return [
            (
                "GET",
                r"/([^/]+)/v2\.0/\.well-known/openid-configuration",
                "discovery",
                self.discovery,
            ),
            ("GET", r"/([^/]+)/oauth2/v2\.0/authorize", "authorize", self.authorize),
            ("POST", r"/([^/]+)/oauth2/v2\.0/token", "token", self.token),
            ("POST", r"/v1\.0/users/([^/]+)/sendMail", "graph_send", self.send_mail),
        ]

    def _tenant(self, name: str) -> Tenant | None:
        for tenant in self.tenants.values():
            if name.lower() in ({tenant.tenant_id.lower()} | tenant.domains):
                return tenant
        return None

    def _unknown_tenant(self, name: str) -> Response:
        return aad_error(
            400,
            "invalid_tenant",
            90002,
            f"Tenant '{name}' not found. Check to make sure you have the correct tenant ID.",
        )

    def discovery(self, request: Request, match: re.Match[str]) -> Response:
        tenant = self._tenant(match.group(1))
        if tenant is None:
            return self._unknown_tenant(match.group(1))
        host = self.base_url
        if self.endpoints_on_request_host and request.headers.get("host"):
            host = f"https://{request.headers['host']}"
        base = f"{host}/{tenant.tenant_id}"
        return Response.json(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "issuer": f"{base}/v2.0",
                "jwks_uri": f"{self.base_url}/{tenant.tenant_id}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
                "tenant_region_scope": "EU",
            }
        )

    def authorize(self, request: Request, match: re.Match[str]) -> Response:
        params = dict(request.query)
        self.last_authorize_params = params
        tenant = self._tenant(match.group(1))
        if tenant is None:
            return Response.html("AADSTS90002: Tenant not found.", 400)
        app = tenant.apps.get(params.get("client_id", ""))
        if app is None:
            return Response.html("AADSTS700016: Application not found in the directory.", 400)
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in app.redirect_uris:
            return Response.html(
                "AADSTS50011: The redirect URI specified in the request does not match the "
                "redirect URIs configured for the application.",
                400,
            )
        state = params.get("state", "")
        if self.consent_error is not None:
            error, description = self.consent_error
            return Response.redirect(
                redirect_uri, {"error": error, "error_description": description, "state": state}
            )
        if params.get("response_type") != "code" or params.get("code_challenge_method") != "S256":
            return Response.redirect(
                redirect_uri,
                {"error": "invalid_request", "error_description": "AADSTS900144: PKCE required."},
            )
        hint = params.get("login_hint", "").lower()
        user = hint if hint in tenant.users else self.next_consent_user or hint
        code = secrets.token_urlsafe(24)
        self.codes[code] = {
            "tenant": tenant.tenant_id,
            "client_id": app.client_id,
            "redirect_uri": redirect_uri,
            "challenge": params.get("code_challenge", ""),
            "scope": params.get("scope", ""),
            "nonce": params.get("nonce", ""),
            "user": user,
        }
        return Response.redirect(
            redirect_uri, {"code": code, "state": state, "session_state": str(uuid.uuid4())}
        )

    def token(self, request: Request, match: re.Match[str]) -> Response:
        tenant = self._tenant(match.group(1))
        if tenant is None:
            return self._unknown_tenant(match.group(1))
        form = request.form
        app = tenant.apps.get(form.get("client_id", ""))
        if app is None:
            return aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{form.get('client_id')}' was not found in the "
                f"directory '{tenant.tenant_id}'.",
            )
        if form.get("client_assertion_type") == JWT_BEARER_ASSERTION:
            refused = self._check_assertion(
                tenant, app, form.get("client_assertion", ""), request.path
            )
            if refused is not None:
                return refused
        elif not app.secret or form.get("client_secret") != app.secret:
            return aad_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request "
                "is the client secret value, not the client secret ID.",
            )
        if app.expired_secret:
            return aad_error(
                401,
                "invalid_client",
                7000222,
                f"The provided client secret keys for app '{app.client_id}' are expired.",
            )
        grant = form.get("grant_type")
        if grant == "client_credentials":
            return self._client_credentials(tenant, app, form)
        if grant == "authorization_code":
            return self._authorization_code(tenant, app, form)
        if grant == "refresh_token":
            return self._refresh(tenant, app, form)
        return aad_error(400, "unsupported_grant_type", 70003, "Unsupported grant type.")

    def _check_assertion(
        self, tenant: Tenant, app: App, assertion: str, path: str
    ) -> Response | None:
        """Verify a certificate's client assertion as Entra ID does, or say why not.

        The header names the certificate by its SHA-256 thumbprint (``x5t#S256``); the
        signature (PS256 or RS256) must verify with that registered certificate's public
        key; ``aud`` is this token endpoint, ``iss`` and ``sub`` the client ID, ``exp`` ahead.
        """
        try:
            header, claims, signed, signature = jwt_parts(assertion)
        except ValueError:
            return aad_error(400, "invalid_client", 50027, "Invalid JWT token. Malformed.")
        # MSAL pads the base64url (RFC 7515 says unpadded); Entra ID takes either.
        thumbprint = str(header.get("x5t#S256", "")).rstrip("=")
        certificate = next(
            (c for c in app.certificates if b64url(c.fingerprint(hashes.SHA256())) == thumbprint),
            None,
        )
        if certificate is None:
            return aad_error(
                401,
                "invalid_client",
                700027,
                "The certificate with identifier used to sign the client assertion is not "
                f"registered on application. [Reason - The key was not found., Thumbprint of key "
                f"used by client: '{thumbprint}']",
            )
        public_key = certificate.public_key()
        assert isinstance(public_key, rsa.RSAPublicKey)
        schemes = {
            "PS256": padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            "RS256": padding.PKCS1v15(),
        }
        scheme = schemes.get(header.get("alg", ""))
        try:
            if scheme is None:
                raise InvalidSignature
            public_key.verify(signature, signed, scheme, hashes.SHA256())
        except InvalidSignature:
            return aad_error(
                401,
                "invalid_client",
                700027,
                "Client assertion failed signature validation. [Reason - The key was found "
                "but the signature is not valid.]",
            )
        now = time.time()
        audience = f"{self.base_url}{path}"
        if claims.get("aud") != audience:
            return aad_error(
                401,
                "invalid_client",
                700021,
                f"Client assertion audience claim does not match "
                f"Realm issuer. Review the documentation at https://aka.ms/certCredentials. "
                f"[{claims.get('aud')} != {audience}]",
            )
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            return aad_error(
                401,
                "invalid_client",
                700023,
                "Client assertion issuer and subject must be the client ID.",
            )
        if not isinstance(claims.get("exp"), int | float) or claims["exp"] <= now:
            return aad_error(
                401,
                "invalid_client",
                700024,
                "Client assertion is not within its valid time range.",
            )
        if (
            not certificate.not_valid_before_utc.timestamp()
            <= now
            < (certificate.not_valid_after_utc.timestamp())
        ):
            return aad_error(
                401,
                "invalid_client",
                700027,
                "Client assertion contains an invalid signature. "
                "[Reason - The key used is expired.]",
            )
        self.assertions.append((header, claims))
        return None

    def _access_token(self, tenant: Tenant, app: App, scope: str, user: str = "") -> Issued:
        now = time.time()
        claims = {
            "aud": scope.rsplit("/", 1)[0],
            "tid": tenant.tenant_id,
            "appid": app.client_id,
            "app_displayname": "Mail Console",
            "iat": int(now),
            "exp": int(now) + self.token_lifetime,
        }
        roles: tuple[str, ...] = ()
        if user:
            claims["upn"] = user
            claims["scp"] = "SMTP.Send"
        else:
            roles = app.roles
            claims["roles"] = list(roles)
        issued = Issued(unsigned_jwt(claims), now + self.token_lifetime, scope, roles, user)
        self.issued[issued.token] = issued
        return issued

    def _client_credentials(self, tenant: Tenant, app: App, form: dict[str, str]) -> Response:
        scope = form.get("scope", "")
        if not scope.endswith("/.default"):
            return aad_error(
                400, "invalid_scope", 1002012, "The provided value for scope is not valid."
            )
        issued = self._access_token(tenant, app, scope)
        issued.grant = "client_credentials"
        self.tokens_issued["client_credentials"] += 1
        return Response.json(
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": issued.token,
            }
        )

    def _user_tokens(
        self, tenant: Tenant, app: App, user: str, scope: str, nonce: str = ""
    ) -> dict[str, Any]:
        resource_scope = " ".join(s for s in scope.split() if "/" in s)
        issued = self._access_token(tenant, app, resource_scope, user)
        refresh = secrets.token_urlsafe(48)
        self.refresh_tokens[refresh] = {
            "tenant": tenant.tenant_id,
            "client_id": app.client_id,
            "user": user,
            "scope": scope,
            "revoked": False,
        }
        oid = str(uuid.uuid5(uuid.NAMESPACE_URL, user or "nobody"))
        now = int(time.time())
        id_claims = {
            "iss": f"{self.base_url}/{tenant.tenant_id}/v2.0",
            "aud": app.client_id,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "sub": oid,
            "oid": oid,
            "tid": tenant.tenant_id,
            "preferred_username": user,
            "name": user.split("@")[0].title(),
        }
        if nonce:
            id_claims["nonce"] = nonce
        return {
            "token_type": "Bearer",
            "scope": resource_scope,
            "expires_in": self.token_lifetime,
            "access_token": issued.token,
            "refresh_token": refresh,
            "id_token": unsigned_jwt(id_claims),
            "client_info": b64url(f'{{"uid":"{oid}","utid":"{tenant.tenant_id}"}}'.encode()),
        }

    def _authorization_code(self, tenant: Tenant, app: App, form: dict[str, str]) -> Response:
        code = self.codes.pop(form.get("code", ""), None)
        if code is None or code["client_id"] != app.client_id:
            return aad_error(
                400, "invalid_grant", 70000, "The provided authorization code is invalid."
            )
        if form.get("redirect_uri") != code["redirect_uri"]:
            return aad_error(
                400,
                "invalid_grant",
                50011,
                "The redirect URI does not match the one in the request.",
            )
        if s256(form.get("code_verifier", "")) != code["challenge"]:
            return aad_error(
                400, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge."
            )
        self.tokens_issued["authorization_code"] += 1
        return Response.json(
            self._user_tokens(tenant, app, code["user"], code["scope"], code["nonce"])
        )

    def _refresh(self, tenant: Tenant, app: App, form: dict[str, str]) -> Response:
        old = form.get("refresh_token", "")
        grant = self.refresh_tokens.get(old)
        if grant is None or grant["client_id"] != app.client_id:
            return aad_error(
                400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid."
            )
        if grant["revoked"]:
            return aad_error(
                400,
                "invalid_grant",
                700082,
                "The refresh token has expired due to inactivity. The token was issued on "
                "2026-08-01 and was inactive for 90.00:00:00.",
            )
        if self.rotate_invalidates_old:
            grant["revoked"] = True
        self.tokens_issued["refresh_token"] += 1
        return Response.json(self._user_tokens(tenant, app, grant["user"], grant["scope"]))

    def send_mail(self, request: Request, match: re.Match[str]) -> Response:
        issued = self.issued.get(request.bearer)
        if issued is None or issued.expires < time.time():
            return Response.json(
                {
                    "error": {
                        "code": "InvalidAuthenticationToken",
                        "message": "Access token is empty or invalid.",
                    }
                },
                401,
            )
        if "Mail.Send" not in issued.roles:
            return Response.json(
                {
                    "error": {
                        "code": "ErrorAccessDenied",
                        "message": "Access is denied. Check credentials and try again.",
                    }
                },
                403,
            )
        mailbox = unquote(match.group(1)).lower()
        if mailbox in self.missing_mailboxes:
            return Response.json(
                {
                    "error": {
                        "code": "ErrorInvalidUser",
                        "message": f"The requested user '{mailbox}' is invalid.",
                    }
                },
                404,
            )
        if mailbox in self.policy_denied_mailboxes:
            # An Application Access Policy that leaves this mailbox out.
            return Response.json(
                {
                    "error": {
                        "code": "ErrorAccessDenied",
                        "message": "Access to OData is disabled: [RAOP] : Blocked by tenant "
                        "configured AppOnly AccessPolicy settings.",
                    }
                },
                403,
            )
        if request.headers.get("content-type", "").startswith("application/json"):
            return self._send_json_message(match.group(1), request.json or {})
        try:
            raw = base64.b64decode(request.body, validate=True)
        except ValueError:
            return Response.json(
                {
                    "error": {
                        "code": "ErrorMimeContentInvalidBase64String",
                        "message": "Invalid base64 string for MIME content.",
                    }
                },
                400,
            )
        self.sent.append(SentMail(user=match.group(1), raw=raw))
        return Response(202, b"", {"request-id": str(uuid.uuid4())})

    def _send_json_message(self, user: str, body: dict[str, Any]) -> Response:
        # The JSON form: Exchange checks the recipients after the mailbox and the access.
        message = body.get("message") or {}
        recipients = [
            r
            for kind in ("toRecipients", "ccRecipients", "bccRecipients")
            for r in message.get(kind) or []
        ]
        if not recipients:
            return Response.json(
                {
                    "error": {
                        "code": "ErrorInvalidRecipients",
                        "message": "At least one recipient is not valid., A message can't be "
                        "sent because it contains no recipients.",
                    }
                },
                400,
            )
        self.sent_json.append((user, message))
        return Response(202, b"", {"request-id": str(uuid.uuid4())})
