"""Access tokens: the interface the sender uses, whatever the grant behind it.

A ``TokenProvider`` hands out a bearer token for one configuration and caches
it until shortly before it expires. Implementations:

- client credentials with MSAL (Microsoft Graph in API mode),
- a Google service account with domain-wide delegation (Gmail API in API mode),
- the stored refresh-token grant from the consent flow (SMTP XOAUTH2), which the
  ``oauth`` app registers with ``register_grant_tokens``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from django.utils import timezone

from sender.errors import ConfigurationError
from sender.transcript import Transcript

if TYPE_CHECKING:
    from settings_app.values import MailSettings

T = TypeVar("T")


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and what we know about it (never logged or shown)."""

    token: str = field(repr=False)
    expires_at: datetime | None = None
    account: str = ""
    roles: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()


class TokenProvider(Protocol):
    """Gives an access token for one configuration; raises ``sender.errors.MailError``."""

    def get_token(self, transcript: Transcript | None = None) -> AccessToken: ...


# The SMTP OAuth grant (refresh token from the consent flow) belongs to the ``oauth``
# app, which sits above the sender: it registers here how to get tokens from it, so
# the sender never imports the app that holds the grant.
_grant_tokens: Callable[[MailSettings], TokenProvider] | None = None


def register_grant_tokens(factory: Callable[[MailSettings], TokenProvider]) -> None:
    """Install the token provider for the stored SMTP OAuth grant (done by ``oauth``)."""
    global _grant_tokens
    _grant_tokens = factory


def grant_tokens(config: MailSettings) -> TokenProvider:
    """The provider of XOAUTH2 tokens from the stored grant for ``config``."""
    if _grant_tokens is None:
        raise ConfigurationError(
            "SMTP OAuth is configured, but the OAuth app is not installed.",
            step="Obtain token",
            hint="Add 'oauth' to INSTALLED_APPS, or choose Basic authentication.",
        )
    return _grant_tokens(config)


EXPIRY_MARGIN = timedelta(minutes=5)


class CachedTokenProvider(ABC):
    """Hands out one token until shortly before it expires; subclasses fetch a new one."""

    #: What the transcript calls the token's source, e.g. "Microsoft identity platform".
    source = "the identity provider"

    def __init__(self) -> None:
        self._token: AccessToken | None = None
        self._lock = threading.Lock()

    def get_token(self, transcript: Transcript | None = None) -> AccessToken:
        transcript = transcript or Transcript.discard()
        with self._lock:
            cached = self._token
            if cached is not None and not expires_soon(cached):
                with transcript.step("Obtain token") as step:
                    step.details.append(f"Reused the cached token, {describe_expiry(cached)}")
                    step.details.extend(self.describe(cached))
                return cached
            with transcript.step("Obtain token") as step:
                token = self.fetch()
                step.details.append(f"Token issued by {self.source}, {describe_expiry(token)}")
                step.details.extend(self.describe(token))
            self._token = token
            return token

    def invalidate(self) -> None:
        """Forget the cached token (the API said it is no longer valid)."""
        with self._lock:
            self._token = None

    @abstractmethod
    def fetch(self) -> AccessToken:
        """Ask the provider for a new token; raise ``MailError``."""

    def describe(self, token: AccessToken) -> list[str]:
        """Facts about the token for the transcript (never the token itself)."""
        return [f"Account: {token.account}"] if token.account else []


def expires_soon(token: AccessToken) -> bool:
    return token.expires_at is not None and token.expires_at - EXPIRY_MARGIN <= timezone.now()


def describe_expiry(token: AccessToken) -> str:
    if token.expires_at is None:
        return "no expiry given"
    return f"valid until {timezone.localtime(token.expires_at):%H:%M:%S %Z}"


def expires_in(seconds: int | float | str | None) -> datetime | None:
    """The absolute expiry for an ``expires_in`` value from a token response."""
    try:
        return timezone.now() + timedelta(seconds=int(seconds)) if seconds else None
    except (TypeError, ValueError):
        return None


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, not verified: only to show roles and account in the transcript."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}


class ProviderCache:
    """Token providers kept per configuration, so a token outlives one backend instance.

    Keyed by a hash that includes the secrets: a changed secret gets a new provider.
    Bounded, because every Test Mail with different values makes a new entry.
    """

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._items: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: str, build: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items[key] = self._items.pop(key)  # most recently used last
                return self._items[key]
        item = build()  # outside the lock: building may do network I/O
        with self._lock:
            item = self._items.setdefault(key, item)
            while len(self._items) > self.size:
                self._items.pop(next(iter(self._items)))
            return item

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def cache_key(*parts: object) -> str:
    """A hash of the values that identify a provider (secrets included, never stored)."""
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()
