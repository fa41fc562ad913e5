"""One error hierarchy for sending mail and getting tokens.

Every error says at which step it happened, carries the provider's code and
text for support, and a hint telling the admin what to do next. Messages never
contain secrets or tokens.
"""

from __future__ import annotations


class MailError(Exception):
    """Base class: catch this to catch every sending or token failure."""

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


class MailConnectionError(MailError):
    """The server could not be reached: DNS, refused, timeout, dropped connection."""


class TLSError(MailError):
    """TLS could not be set up: certificate invalid, hostname mismatch, STARTTLS missing."""


class AuthenticationError(MailError):
    """The credentials or token were rejected."""


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


class RecipientsRefused(MailError):
    """The server refused one or more recipients."""


class RateLimited(MailError):
    """The provider asked us to slow down and did not recover in time."""


class ProviderError(MailError):
    """Any other error answered by the provider."""
