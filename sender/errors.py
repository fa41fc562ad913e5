"""One error hierarchy for sending mail and getting tokens.

Every error says at which step it happened, carries the provider's code and
text for support, and a hint telling the admin what to do next. Messages never
contain secrets or tokens.
"""

from __future__ import annotations


class MailError(Exception):
    """Base class: catch this to catch every sending or token failure."""

    default_hint = ""

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
        self.hint = hint or self.default_hint

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.append(f"[{self.code}]")
        if self.hint:
            parts.append(self.hint)
        return " ".join(parts)


class ConfigurationError(MailError):
    """Nothing (or not enough) is configured to send mail."""


class MailConnectionError(MailError):
    """The server could not be reached: DNS, refused, timeout, dropped connection."""


class TLSError(MailError):
    """TLS could not be set up: certificate invalid, hostname mismatch, STARTTLS missing."""


class AuthenticationError(MailError):
    """The credentials or token were rejected."""


class AuthorizationError(MailError):
    """Authenticated, but not allowed: missing permission, consent, send-as right."""


class RecipientsRefused(MailError):
    """The server refused one or more recipients."""


class RateLimited(MailError):
    """The provider asked us to slow down and did not recover in time."""


class ProviderError(MailError):
    """Any other error answered by the provider."""
