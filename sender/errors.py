"""One error hierarchy for sending mail and getting tokens.

Every error says at which step it happened, carries the provider's code and
text for support, and a hint telling the admin what to do next. Messages never
contain secrets or tokens.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RefusedRecipient:
    """A recipient the server or API would not take, with its answer (secrets hidden)."""

    address: str
    reply: str


class MailError(Exception):
    """Base class: catch this to catch every sending or token failure."""

    # Whether trying again later may succeed (the outbox retries it) or not (it fails at
    # once). None: it depends on the reply code (SMTP 4xx is temporary); see sender/retries.py.
    transient: bool | None = None
    # Seconds the provider asked us to wait (HTTP Retry-After), if it said.
    retry_after: float | None = None
    # The recipients refused when every recipient was (the message failed for them all).
    refused: tuple[RefusedRecipient, ...] = ()

    def __init__(
        self,
        message: str,
        *,
        step: str = "",
        code: str = "",
        provider_text: str = "",
        hint: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.step = step
        self.code = code
        self.provider_text = provider_text
        self.hint = hint

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.append(f"[{self.code}]")
        if self.hint:
            parts.append(self.hint)
        return " ".join(parts)


class ConfigurationError(MailError):
    """Nothing (or not enough) is configured to send mail."""

    transient = False


class MailConnectionError(MailError):
    """The server could not be reached: DNS, refused, timeout, dropped connection."""

    transient = True


class TLSError(MailError):
    """TLS could not be set up: certificate invalid, hostname mismatch, STARTTLS missing."""

    transient = False


class AuthenticationError(MailError):
    """The credentials or token were rejected."""

    transient = False


class GrantInvalid(AuthenticationError):
    """The refresh token was refused (``invalid_grant``): the admin must authorize again."""

    @classmethod
    def from_error(cls, err: MailError) -> GrantInvalid:
        """The same error, typed so the grant can be marked expired."""
        return cls(
            err.message,
            step=err.step,
            code=err.code,
            provider_text=err.provider_text,
            hint=err.hint,
        )


class AuthorizationError(MailError):
    """Authenticated, but not allowed: missing permission, consent, send-as right."""

    transient = False


class RecipientsRefused(MailError):
    """The server refused one or more recipients."""


class RateLimited(MailError):
    """The provider asked us to slow down and did not recover in time."""

    transient = True


class ProviderError(MailError):
    """Any other error answered by the provider."""
