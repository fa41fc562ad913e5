"""What Microsoft Graph and the Gmail API transports share: token, post, retry, explain.

The sending algorithm lives here (django-anymail's shape); each API fills in its
token provider, how to post a message, and how to read its errors.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from typing import Any

import requests
from django.core.mail import EmailMessage
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from sender import deadline
from sender.errors import (
    ConfigurationError,
    MailError,
    RateLimited,
    RecipientsRefused,
    RefusedRecipient,
)
from sender.http import shared_session
from sender.known_failures import KnownFailure, explain
from sender.network import show_https_connection
from sender.network_errors import http_failure
from sender.tokens import AccessToken, ApiTokenProvider
from sender.transcript import Transcript
from settings_app.values import MailSettings

from .base import Accepted, Transport

STEP = "Send message"
RETRY_STATUSES = (429, 503, 504)
MAX_RETRIES = 2
MAX_WAIT_SECONDS = 10.0
# Answers after which a later attempt may succeed (the outbox retries them).
TRANSIENT_STATUSES = (429, 500, 502, 503, 504)
# Only its Retry-After parser is used; its cap (6 hours) is far above MAX_WAIT_SECONDS.
_RETRY_AFTER = Retry()


def mime_with_bcc(message: EmailMessage) -> bytes:
    """The RFC 822 bytes of a message, with a Bcc header for APIs that read recipients
    from the headers (both Graph and Gmail strip it before delivery)."""
    mime = message.message()
    if message.bcc:
        mime["Bcc"] = ", ".join(message.bcc)
    return mime.as_bytes(linesep="\r\n")


def retry_after(response: requests.Response, attempt: int) -> float:
    """Seconds to wait before retrying: the server's Retry-After, or a short backoff."""
    value = response.headers.get("Retry-After", "")
    if value:
        try:
            # Seconds or an HTTP date, never negative (RFC 9110 10.2.3).
            return float(_RETRY_AFTER.parse_retry_after(value))
        except InvalidHeader:
            pass
    return float(2**attempt)


def error_object(response: requests.Response) -> dict[str, Any]:
    """The ``{"error": {...}}`` object Graph and Google answer with ({} for any other body)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def api_error(
    response: requests.Response,
    table: tuple[KnownFailure, ...],
    *codes: int | str,
    code: str,
    text: str = "",
    api_name: str,
) -> MailError:
    """The error an unsuccessful API response means: the first row of ``table`` matching
    ``codes`` and ``text``, else the API's own answer as a ``ProviderError``."""
    provider_text = error_object(response).get("message") or response.reason or ""
    return explain(
        table,
        *codes,
        text=text,
        step=STEP,
        code=code,
        provider_text=provider_text,
        unknown=f"{api_name} answered {response.status_code}: {provider_text}",
        # The status says whether a later attempt may succeed, whatever the row's class.
        transient=response.status_code in TRANSIENT_STATUSES,
        retry_after=retry_after(response, 0) if response.headers.get("Retry-After") else None,
    )


class HttpApiTransport(Transport):
    """A transport that posts each message to an HTTPS API with a bearer token."""

    api_name = "the API"

    def __init__(
        self,
        config: MailSettings,
        *,
        transcript: Transcript | None = None,
        timeout: float | None = None,
        ca_file: str | None = None,
    ) -> None:
        super().__init__(config, timeout=timeout, ca_file=ca_file, transcript=transcript)
        self.tokens: ApiTokenProvider | None = None
        self.session = shared_session(self.ca_file, self.timeout)
        # The longest Retry-After waited for in place; a worker sets 0 and retries later.
        self.max_wait = MAX_WAIT_SECONDS

    @abstractmethod
    def token_provider(self) -> ApiTokenProvider:
        """The shared token provider for this configuration."""

    @abstractmethod
    def post(self, token: AccessToken, raw: bytes) -> requests.Response:
        """Post one message to the API."""

    @abstractmethod
    def accepted(self, response: requests.Response) -> str | None:
        """The provider's id or status text if the response means sent, else None."""

    @abstractmethod
    def error_for(self, response: requests.Response) -> MailError:
        """The error an unsuccessful response means."""

    @property
    @abstractmethod
    def endpoint(self) -> str:
        """The URL messages are posted to (for error messages)."""

    @property
    @abstractmethod
    def identity_url(self) -> str:
        """The URL tokens come from (its host is what Test Mail shows being reached)."""

    def open(self) -> None:
        if self.tokens is None:
            # Test Mail shows how each host is reached (DNS, TCP, TLS) before using it.
            self._show_connection(self.identity_url)
            self.tokens = self.token_provider()
            # Fetched now so a credential problem shows up as its own step.
            self.tokens.get_token(self.transcript)
            self._show_connection(self.endpoint)

    def _show_connection(self, url: str) -> None:
        if self.transcript.enabled:
            show_https_connection(
                url, ca_file=self.ca_file, timeout=self.timeout, transcript=self.transcript
            )

    def send(self, message: EmailMessage) -> Accepted:
        if getattr(message, "envelope_only", False):
            raise ConfigurationError(
                f"This message is for only some of the addresses in its headers, and "
                f"{self.api_name} sends to every address in them.",
                step=STEP,
                code="ENVELOPE-ONLY",
                hint="A resend to refused recipients goes through an SMTP connection only: "
                "use SMTP mode, or resend a copy to everyone.",
            )
        self.open()
        raw = mime_with_bcc(message)
        with self.transcript.step(STEP) as step:
            try:
                result = self._post_with_retries(raw, step.details)
            except RecipientsRefused as error:
                # The APIs take or refuse a message whole: refused for a recipient, it went
                # to nobody, so every recipient is named with the API's answer.
                answer = f"{error.code} {error.provider_text}".strip()
                error.refused = tuple(
                    RefusedRecipient(str(address), answer) for address in message.recipients()
                )
                raise
            step.details.append(f"Accepted by {self.api_name}: {result}")
        return Accepted(result)

    def _post_with_retries(self, raw: bytes, details: list[str]) -> str:
        assert self.tokens is not None
        token_refreshed = False
        attempt = 0
        while True:
            token = self.tokens.get_token()
            try:
                response = self.post(token, raw)
            except requests.RequestException as err:
                raise http_failure(STEP, err, self.endpoint, self.timeout) from err
            result = self.accepted(response)
            if result is not None:
                return result
            if response.status_code == 401 and not token_refreshed:
                # The token was revoked or expired early: one new token, one retry.
                details.append("The API rejected the token; retrying with a new one.")
                self.tokens.invalidate()
                token_refreshed = True
                continue
            if response.status_code in RETRY_STATUSES and attempt < MAX_RETRIES:
                wait = retry_after(response, attempt)
                left = deadline.time_left()
                if left is not None and wait >= left:
                    # Sleeping would outlast the Test Mail's time limit: report the answer now.
                    details.append(
                        f"{self.api_name} asked to retry in {wait:g} s, after the test's time limit."
                    )
                elif wait <= min(self.max_wait, self.timeout):
                    details.append(
                        f"{self.api_name} answered {response.status_code}; retrying in {wait:g} s."
                    )
                    time.sleep(wait)
                    attempt += 1
                    continue
            error = self.error_for(response)
            if response.status_code in RETRY_STATUSES and not isinstance(error, RateLimited):
                raise RateLimited(
                    error.message,
                    step=STEP,
                    code=error.code,
                    provider_text=error.provider_text,
                    hint=error.hint or "Try again in a few minutes.",
                    retry_after=error.retry_after,
                )
            raise error

    def close(self) -> None:
        # The session is shared and keeps its connections for the next batch.
        self.tokens = None
