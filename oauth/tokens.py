"""Access tokens: the interface the sender uses, whatever the grant behind it.

A ``TokenProvider`` hands out a bearer token for one configuration and caches
it until shortly before it expires. Implementations:

- client credentials with MSAL (Microsoft Graph in API mode),
- a Google service account with domain-wide delegation (Gmail API in API mode),
- the stored refresh-token grant from the consent flow (SMTP XOAUTH2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from settings_app.transcript import Transcript


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and what we know about it (never logged or shown)."""

    token: str = field(repr=False)
    expires_at: datetime | None = None
    account: str = ""
    roles: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()


class TokenProvider(Protocol):
    """Gives an access token for one configuration; raises ``settings_app.errors.MailError``."""

    def get_token(self, transcript: Transcript | None = None) -> AccessToken: ...
