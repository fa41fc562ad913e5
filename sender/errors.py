"""One error hierarchy for sending mail and getting tokens.

Every error says at which step it happened, carries the provider's code and
text for support, and a hint telling the admin what to do next. Messages never
contain secrets or tokens.

What a failure means for the outbox is a property of the error, fixed when it is
built (by its class, or by whoever reads the provider's answer), never read from its
words or codes afterwards:

- ``transient``: a later attempt may succeed (retried) or not (fails at once);
- ``concerns_message``: the failure is the message's own (a refused recipient), not
  the connection's: it neither opens nor extends an incident;
- ``needs_reauthorization``: the admin must authorize again (Reconnect);
- ``refuses_account``: the provider refused the connection's account (its credentials,
  a permission, its grant): every further sign-in repeats the refusal, and repeated
  failed sign-ins lock accounts (Microsoft 365, fail2ban);
- ``affects_every_message``: a permanent failure of the connection itself (the
  account refused, TLS, nothing configured): no message can go through it as it is.
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

    transient: bool = False
    concerns_message: bool = False
    needs_reauthorization: bool = False
    refuses_account: bool = False
    every_message_class: bool = False
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
        transient: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.step = step
        self.code = code
        self.provider_text = provider_text
        self.hint = hint
        if transient is not None:
            self.transient = transient
        # Seconds the provider asked us to wait (HTTP Retry-After), if it said.
        self.retry_after = retry_after

    @property
    def affects_every_message(self) -> bool:
        """A permanent failure of the connection itself: credentials, permission, TLS,
        nothing configured (what an alert must not be sent through)."""
        return self.every_message_class and not self.transient and not self.concerns_message

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.append(f"[{self.code}]")
        if self.hint:
            parts.append(self.hint)
        return " ".join(parts)


class ConfigurationError(MailError):
    """Nothing (or not enough) is configured to send mail."""

    every_message_class = True


class MailConnectionError(MailError):
    """The server could not be reached: DNS, refused, timeout, dropped connection."""

    transient = True


class TLSError(MailError):
    """TLS could not be set up: certificate invalid, hostname mismatch, STARTTLS missing."""

    every_message_class = True


class AuthenticationError(MailError):
    """The credentials or token were rejected."""

    refuses_account = True
    every_message_class = True


class AuthorizationError(MailError):
    """Authenticated, but not allowed: missing permission, consent, send-as right."""

    refuses_account = True
    every_message_class = True


class SenderRefused(AuthorizationError):
    """The server refused the From Address (no Send As right for it): a refusal of the
    message's sender, after the account signed in, not of the account itself. A message
    sent from another address may go through."""

    refuses_account = False
    every_message_class = False


class NeedsReauthorization(MailError):
    """The fix is to authorize the account again (Reconnect), not to wait or edit settings."""

    needs_reauthorization = True
    every_message_class = True


class GrantInvalid(NeedsReauthorization, AuthenticationError):
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


class GrantMissing(NeedsReauthorization, ConfigurationError):
    """No OAuth authorization exists for these settings (never made, removed, or made for
    other settings): nothing was refused, but nothing can sign in until one is made."""


class MessageFailure(MailError):
    """A failure of this message only (its content is gone, its worker stopped): other
    messages through the same connection are not affected."""

    concerns_message = True


class RecipientsRefused(MessageFailure):
    """The server refused one or more recipients."""


class MessageRefused(MessageFailure):
    """The server refused this message for what it is (too large), not for who sends it."""


class RateLimited(MailError):
    """The provider asked us to slow down and did not recover in time."""

    transient = True


class ProviderError(MailError):
    """Any other error answered by the provider (temporary only when its builder says so)."""
