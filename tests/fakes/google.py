"""A fake Google OAuth server and Gmail API, speaking the real protocols.

The token endpoint verifies service-account JWT assertions (RS256, against the
public key of the key file it issued) and checks domain-wide delegation; it also
redeems authorization codes (PKCE) and refresh tokens for web clients. The
authorize endpoint consents at once; revocation and Gmail ``messages.send`` too.
"""

from __future__ import annotations

import base64
import email
import email.policy
import email.utils
import re
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import trustme
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .base import ProviderFake, Request, Response, Route, SentMail, jwt_parts, s256, unsigned_jwt

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GMAIL_SCOPES = ("https://www.googleapis.com/auth/gmail.send", "https://mail.google.com/")


@lru_cache(maxsize=4)
def _rsa_key(index: int) -> rsa.RSAPrivateKey:
    # RSA generation is slow: a few keys per process are plenty.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class WebClient:
    client_id: str
    secret: str
    redirect_uris: tuple[str, ...]


def google_error(status: int, error: str, description: str) -> Response:
    return Response.json({"error": error, "error_description": description}, status)


def api_error(status: int, reason: str, message: str, status_text: str) -> Response:
    return Response.json(
        {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"message": message, "domain": "global", "reason": reason}],
                "status": status_text,
            }
        },
        status,
    )


class GoogleFake(ProviderFake):
    """Google's token, authorize and revoke endpoints plus the Gmail API on one server."""

    token_lifetime = 3599

    def __init__(self, ca: trustme.CA) -> None:
        super().__init__(ca)
        self.token_uri = f"{self.base_url}/token"
        self.auth_uri = f"{self.base_url}/o/oauth2/v2/auth"
        self.revoke_uri = f"{self.base_url}/revoke"
        self.public_keys: dict[str, rsa.RSAPublicKey] = {}
        self.key_clients: dict[str, str] = {}  # key id -> service account client id
        self._key_count = 0
        self.reset()

    def reset(self) -> None:
        super().reset()
        self.delegations: dict[str, set[str]] = {}
        self.users: set[str] = set()
        self.clients: dict[str, WebClient] = {}
        self.access_tokens: dict[str, dict[str, Any]] = {}
        self.rotate_refresh_tokens = False
        self.revoked: list[str] = []
        # A project whose OAuth consent screen is in "Testing": refresh tokens last 7 days,
        # and the code exchange says so (refresh_token_expires_in).
        self.testing_publishing_status = False

    # Set-up ------------------------------------------------------------------
    def make_service_account(
        self,
        client_email: str = "mailer@mail-console.iam.gserviceaccount.com",
        client_id: str = "112233445566778899001",
    ) -> dict[str, Any]:
        """A complete service account key file whose token_uri is this fake."""
        key = _rsa_key(self._key_count % 4)
        self._key_count += 1
        key_id = secrets.token_hex(20)
        self.public_keys[key_id] = key.public_key()
        self.key_clients[key_id] = client_id
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": "mail-console",
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": client_email,
            "client_id": client_id,
            "auth_uri": self.auth_uri,
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": f"{self.base_url}/oauth2/v1/certs",
            "client_x509_cert_url": f"{self.base_url}/robot/v1/metadata/x509/{client_email}",
            "universe_domain": "googleapis.com",
        }

    def delegate(self, client_id: str, scopes: tuple[str, ...] = GMAIL_SCOPES[:1]) -> None:
        self.delegations.setdefault(client_id, set()).update(scopes)

    def add_user(self, address: str) -> None:
        self.users.add(address.lower())

    def add_client(self, client_id: str, secret: str, redirect_uris: tuple[str, ...]) -> None:
        self.clients[client_id] = WebClient(client_id, secret, redirect_uris)

    def token_is_valid(self, token: str, scope_contains: str | None = None) -> bool:
        grant = self.access_tokens.get(token)
        return (
            grant is not None
            and grant["expires"] > time.time()
            and (scope_contains is None or scope_contains in grant["scope"])
        )

    def token_user(self, token: str) -> str:
        grant = self.access_tokens.get(token)
        return grant["user"] if grant else ""

    # Routes ------------------------------------------------------------------
    def routes(self) -> list[tuple[str, str, str, Route]]:
        return [
            ("POST", r"/token", "token", self.token),
            ("GET", r"/o/oauth2/v2/auth", "authorize", self.authorize),
            ("POST", r"/revoke", "revoke", self.revoke),
            ("POST", r"/gmail/v1/users/([^/]+)/messages/send", "gmail_send", self.gmail_send),
        ]

    def _issue(self, user: str, scope: str, refresh_token: str = "") -> str:
        token = "ya29." + secrets.token_urlsafe(40)
        self.access_tokens[token] = {
            "user": user,
            "scope": scope,
            "expires": time.time() + self.token_lifetime,
            "refresh_token": refresh_token,
        }
        return token

    def token(self, request: Request, match: re.Match[str]) -> Response:
        form = request.form
        grant = form.get("grant_type")
        if grant == JWT_BEARER:
            return self._jwt_bearer(form.get("assertion", ""))
        client_id, secret = form.get("client_id", ""), form.get("client_secret")
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):  # client_secret_basic, as Google also accepts
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
        client = self.clients.get(client_id)
        if client is None or client.secret != secret:
            return google_error(401, "invalid_client", "Unauthorized")
        if grant == "authorization_code":
            return self._authorization_code(client, form)
        if grant == "refresh_token":
            return self._refresh(form.get("refresh_token", ""))
        return google_error(400, "unsupported_grant_type", "Invalid grant_type: " + str(grant))

    def _jwt_bearer(self, assertion: str) -> Response:
        try:
            header, claims, signed, signature = jwt_parts(assertion)
        except ValueError:
            return google_error(400, "invalid_grant", "Invalid JWT: malformed.")
        key = self.public_keys.get(header.get("kid", ""))
        try:
            if key is None:
                raise InvalidSignature
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return google_error(400, "invalid_grant", "Invalid JWT Signature.")
        # google-auth always names Google's endpoint as the audience, whatever token_uri is.
        audiences = (self.token_uri, "https://oauth2.googleapis.com/token")
        if claims.get("aud") not in audiences or claims.get("exp", 0) < time.time():
            return google_error(
                400, "invalid_grant", "Invalid JWT: Token must be a short-lived token."
            )
        requested = set(claims.get("scope", "").split())
        allowed = self.delegations.get(self.key_clients.get(header.get("kid", ""), ""), set())
        subject = claims.get("sub", "")
        if subject and not requested <= allowed:
            return google_error(
                401,
                "unauthorized_client",
                "Client is unauthorized to retrieve access tokens using this method, or client "
                "not authorized for any of the scopes requested.",
            )
        if subject and subject.lower() not in self.users:
            return google_error(400, "invalid_grant", "Invalid email or User ID")
        self.tokens_issued["jwt_bearer"] += 1
        token = self._issue(subject or claims.get("iss", ""), " ".join(sorted(requested)))
        return Response.json(
            {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        )

    def authorize(self, request: Request, match: re.Match[str]) -> Response:
        params = dict(request.query)
        self.last_authorize_params = params
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            return Response.html("Error 401: invalid_client. The OAuth client was not found.", 401)
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri not in client.redirect_uris:
            return Response.html("Error 400: redirect_uri_mismatch", 400)
        state = params.get("state", "")
        if self.consent_error is not None:
            error, description = self.consent_error
            return Response.redirect(
                redirect_uri, {"error": error, "error_description": description, "state": state}
            )
        user = params.get("login_hint", "").lower() or self.next_consent_user
        code = "4/" + secrets.token_urlsafe(24)
        self.codes[code] = {
            "client_id": client.client_id,
            "redirect_uri": redirect_uri,
            "challenge": params.get("code_challenge", ""),
            "method": params.get("code_challenge_method", ""),
            "scope": params.get("scope", ""),
            "offline": params.get("access_type") == "offline",
            "user": self.next_consent_user or user,
        }
        return Response.redirect(
            redirect_uri, {"code": code, "state": state, "scope": params.get("scope", "")}
        )

    def _authorization_code(self, client: WebClient, form: dict[str, str]) -> Response:
        code = self.codes.pop(form.get("code", ""), None)
        if code is None or code["client_id"] != client.client_id:
            return google_error(400, "invalid_grant", "Malformed auth code.")
        if form.get("redirect_uri") != code["redirect_uri"]:
            return google_error(400, "redirect_uri_mismatch", "Bad Request")
        if code["method"] != "S256" or s256(form.get("code_verifier", "")) != code["challenge"]:
            return google_error(400, "invalid_grant", "Missing code verifier.")
        refresh = secrets.token_urlsafe(40) if code["offline"] else ""
        if refresh:
            self.refresh_tokens[refresh] = {
                "client_id": client.client_id,
                "user": code["user"],
                "scope": code["scope"],
            }
        self.tokens_issued["authorization_code"] += 1
        body: dict[str, Any] = {
            "access_token": self._issue(code["user"], code["scope"], refresh),
            "expires_in": self.token_lifetime,
            "token_type": "Bearer",
            "scope": code["scope"],
            "id_token": unsigned_jwt(
                {
                    "iss": "https://accounts.google.com",
                    "aud": client.client_id,
                    "sub": str(abs(hash(code["user"]))),
                    "email": code["user"],
                    "email_verified": True,
                    "iat": int(time.time()),
                    "exp": int(time.time()) + 3600,
                }
            ),
        }
        if refresh:
            body["refresh_token"] = refresh
            if self.testing_publishing_status:
                body["refresh_token_expires_in"] = 7 * 24 * 3600 - 1
        return Response.json(body)

    def _refresh(self, refresh_token: str) -> Response:
        grant = self.refresh_tokens.get(refresh_token)
        if grant is None:
            return google_error(400, "invalid_grant", "Token has been expired or revoked.")
        self.tokens_issued["refresh_token"] += 1
        body: dict[str, Any] = {
            "expires_in": self.token_lifetime,
            "token_type": "Bearer",
            "scope": grant["scope"],
        }
        if self.rotate_refresh_tokens:
            del self.refresh_tokens[refresh_token]
            refresh_token = secrets.token_urlsafe(40)
            self.refresh_tokens[refresh_token] = grant
            body["refresh_token"] = refresh_token
        body["access_token"] = self._issue(grant["user"], grant["scope"], refresh_token)
        return Response.json(body)

    def revoke(self, request: Request, match: re.Match[str]) -> Response:
        token = request.form.get("token", "")
        self.revoked.append(token)
        self.refresh_tokens.pop(token, None)
        for access in [t for t, g in self.access_tokens.items() if g["refresh_token"] == token]:
            del self.access_tokens[access]
        return Response.json({})

    def gmail_send(self, request: Request, match: re.Match[str]) -> Response:
        grant = self.access_tokens.get(request.bearer)
        if grant is None or grant["expires"] < time.time():
            return api_error(401, "authError", "Invalid Credentials", "UNAUTHENTICATED")
        if not any(scope in grant["scope"] for scope in GMAIL_SCOPES):
            return api_error(
                403, "insufficientPermissions", "Insufficient Permission", "PERMISSION_DENIED"
            )
        try:
            raw = base64.urlsafe_b64decode(request.json["raw"])
        except (KeyError, TypeError, ValueError):
            return api_error(
                400, "invalidArgument", "Invalid value for ByteString", "INVALID_ARGUMENT"
            )
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        if not any(parsed.get_all(header) for header in ("To", "Cc", "Bcc")):
            return api_error(
                400, "invalidArgument", "Recipient address required", "INVALID_ARGUMENT"
            )
        headers = [str(v) for h in ("To", "Cc", "Bcc") for v in parsed.get_all(h) or []]
        if any("@" not in address for _, address in email.utils.getaddresses(headers)):
            # Gmail refuses the whole message for one malformed recipient.
            return api_error(400, "invalidArgument", "Invalid To header", "INVALID_ARGUMENT")
        self.sent.append(SentMail(user=grant["user"], raw=raw))
        return Response.json(
            {"id": secrets.token_hex(8), "threadId": secrets.token_hex(8), "labelIds": ["SENT"]}
        )
