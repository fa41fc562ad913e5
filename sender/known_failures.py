"""Known failures: what a provider's answer means, and what the admin should do about it.

Every provider's table (SMTP replies, Microsoft Graph, the Gmail API, the Microsoft and
Google identity platforms) is a tuple of ``KnownFailure`` rows, kept next to that
provider's code, and read with the one lookup here, ``explain``. Adding a known answer
is adding a row. The step is not in the rows: the same answer can come at several
steps (a 535 at AUTH or at MAIL; an identity error when authorizing or refreshing), so
the caller, who knows where it was, names it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sender.errors import MailError, ProviderError

# Hints more than one provider's table gives.
SEND_AS_HINT = (
    "The account that signs in is not allowed to send as the From Address. Give it "
    "'Send As' permission on that mailbox, or set the From Address to the account's "
    "own address (for Google: the account or one of its verified aliases)."
)
RECONNECT = "Reconnect the authorization on the Mail Server page."

# What a {placeholder} in a hint says when the caller has no value for it.
PLACEHOLDER_DEFAULTS = {"redirect_uri": "the redirect URI shown on the page"}
# OAuth 2.0 error codes (RFC 6749 5.2 and 4.1.2.1) of an identity platform that is down.
TEMPORARY_OAUTH_ERRORS = frozenset({"temporarily_unavailable", "server_error"})


@dataclass(frozen=True)
class KnownFailure:
    """One known answer: the match (code, text fragment), the error class, what happened
    (``message``) and what to do (``hint``, which may name {placeholders} the caller fills).

    ``code`` is the provider's code: an SMTP reply code or a range of them, an HTTP
    status, or an error code such as ``AADSTS7000215`` or ``ErrorAccessDenied``.
    ``contains`` is a fragment the provider's text must contain (lower case; "" = any).
    What the failure means for retries, failover and incidents is the error class's
    (``sender/errors.py``); ``transient`` overrides its verdict for this row.
    """

    code: int | range | str
    error: type[MailError]
    message: str
    hint: str
    contains: str = ""
    transient: bool | None = None

    def matches(self, codes: Iterable[int | str], lowered_text: str) -> bool:
        """Whether one of the answer's ``codes`` is this row's and its text has the fragment."""
        return self.contains in lowered_text and any(self._is_code(code) for code in codes)

    def _is_code(self, code: int | str) -> bool:
        if isinstance(self.code, range):
            return isinstance(code, int) and code in self.code
        return type(code) is type(self.code) and code == self.code

    def error_for(
        self,
        *,
        step: str,
        code: str,
        provider_text: str,
        context: Mapping[str, str] | None = None,
        transient: bool | None = None,
        retry_after: float | None = None,
    ) -> MailError:
        """The error to raise, the provider's code and text kept on it for support.

        ``transient``: the caller's verdict from the answer's kind (an HTTP status), over
        the row's and its class's.
        """
        return self.error(
            self.message,
            step=step,
            code=code,
            provider_text=provider_text,
            hint=self.hint.format_map(_Placeholders(context or {})),
            transient=self.transient if transient is None else transient,
            retry_after=retry_after,
        )


def find(table: Iterable[KnownFailure], *codes: int | str, text: str = "") -> KnownFailure | None:
    """The first row of ``table`` that matches one of ``codes`` and ``text``, or None.

    Several ``codes`` are for answers that carry more than one (a Graph error code and
    its HTTP status; an AADSTS number and its OAuth ``error``): the first row that
    matches any of them wins, so a table lists its most specific rows first.
    """
    lowered = text.lower()
    return next((row for row in table if row.matches(codes, lowered)), None)


def explain(
    table: Iterable[KnownFailure],
    *codes: int | str,
    text: str = "",
    step: str,
    code: str,
    provider_text: str,
    unknown: str,
    context: Mapping[str, str] | None = None,
    transient: bool | None = None,
    retry_after: float | None = None,
) -> MailError:
    """The error the answer means: its row's (see ``find``), else a ``ProviderError``
    whose message is ``unknown`` (the provider's own words, for support).

    ``transient``: whether the answer's kind says a later attempt may succeed (an HTTP
    5xx, an OAuth ``temporarily_unavailable``); None leaves it to the row (an unknown
    answer is then permanent).
    """
    row = find(table, *codes, text=text)
    if row is None:
        return ProviderError(
            unknown,
            step=step,
            code=code,
            provider_text=provider_text,
            transient=bool(transient),
            retry_after=retry_after,
        )
    return row.error_for(
        step=step,
        code=code,
        provider_text=provider_text,
        context=context,
        transient=transient,
        retry_after=retry_after,
    )


class _Placeholders(dict):
    def __missing__(self, key: str) -> str:
        return PLACEHOLDER_DEFAULTS.get(key, f"({key})")
