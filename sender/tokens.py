"""Access tokens: the interface the sender uses, whatever the grant behind it.

A ``TokenProvider`` hands out a bearer token for one configuration, reusing it
until shortly before it expires. Each kind of token has one cache:

- client credentials with MSAL (Microsoft Graph in API mode): MSAL's token cache;
- a Google service account with domain-wide delegation (Gmail API in API mode):
  the google-auth credentials object;
- the stored refresh-token grant from the consent flow (SMTP XOAUTH2), which the
  ``oauth`` app registers with ``register_grant_tokens``: the stored grant row,
  whose current access token every process reads and refreshes under a row lock.
"""

from __future__ import annotations

import hashlib
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import google.auth.jwt
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


class ApiTokenProvider(ABC):
    """Tokens for one API-mode configuration, kept by the provider's library between sends.

    There is one cache per kind of token, and it is the library's own: MSAL's token
    cache in its app (Microsoft Graph), google-auth's credentials (Gmail). This class
    only asks it, one caller at a time (so a cold start makes one token request, not
    one per thread), and says in the transcript which it was: reused or newly issued.
    """

    #: What the transcript calls the token's source, e.g. "Microsoft identity platform".
    source = "the identity provider"

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def get_token(self, transcript: Transcript | None = None) -> AccessToken:
        transcript = transcript or Transcript.discard()
        with self._lock, transcript.step("Obtain token") as step:
            token, issued = self.obtain()
            if transcript.enabled:  # described only for a reader: sending needs no words
                how = f"Token issued by {self.source}" if issued else "Reused the cached token"
                step.details.append(f"{how}, {describe_expiry(token)}")
                step.details.extend(self.describe(token))
            return token

    def invalidate(self) -> None:
        """Forget the cached token (the API said it is no longer valid)."""
        with self._lock:
            self.forget_token()

    @abstractmethod
    def obtain(self) -> tuple[AccessToken, bool]:
        """The cached token while it is good (and False), else a new one (and True).

        Raises ``MailError``.
        """

    @abstractmethod
    def forget_token(self) -> None:
        """Drop the cached token from the library's cache."""

    def describe(self, token: AccessToken) -> list[str]:
        """Facts about the token for the transcript (never the token itself)."""
        return [f"Account: {token.account}"] if token.account else []


def expires_soon(token: AccessToken) -> bool:
    """Whether the token expires within ``EXPIRY_MARGIN`` (too soon to send with it)."""
    return token.expires_at is not None and token.expires_at - EXPIRY_MARGIN <= timezone.now()


def describe_expiry(token: AccessToken) -> str:
    """ "valid until 10:42:00 UTC", for the transcript."""
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
        return dict(google.auth.jwt.decode(token, verify=False))
    except ValueError:  # google-auth's MalformedError and binascii.Error are ValueErrors
        return {}


class PerConfiguration(Generic[T]):
    """Objects kept per configuration (token providers, MSAL apps), so what they hold (a
    library's token cache, a discovery document) outlives one backend instance.

    Keyed by a hash that includes the secrets: a changed secret gets a new object.
    Bounded, because every Test Mail with different values makes a new entry.
    """

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._items: dict[str, T] = {}
        self._lock = threading.Lock()

    def get(self, key: str, build: Callable[[], T]) -> T:
        """The object kept for ``key``, built (outside the lock) the first time."""
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
        """Forget every object (tests, after resetting a fake provider)."""
        with self._lock:
            self._items.clear()


def cache_key(*parts: object) -> str:
    """A hash of the values that identify a configuration (secrets included, never stored)."""
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()
