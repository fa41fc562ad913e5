"""Turn low-level failures (sockets, TLS, SMTP replies) into errors an admin can act on.

One table per kind of failure, so adding a known provider reply is adding a row.
The provider's code and text are kept on the error for support; hints say what
to change, in the console's own words.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from django.conf import settings

from sender import deadline
from sender.errors import (
    AuthenticationError,
    AuthorizationError,
    MailConnectionError,
    MailError,
    ProviderError,
    RateLimited,
    RecipientsRefused,
    TLSError,
)
from sender.http import RedirectRefused

PORT_ADVICE = "The usual ports are 465 for SSL, 587 for TLS (STARTTLS) and 25 for None."

SMTP_AUTH_DISABLED_HINT = (
    "Microsoft 365 has SMTP AUTH (authenticated client submission) turned off for this "
    "mailbox or for the whole organization; a mailbox's own setting overrides the "
    "organization's. For this mailbox: Microsoft 365 admin center > Users > Active users > "
    "the user in Username > Mail > Manage email apps > tick Authenticated SMTP (PowerShell: "
    "Set-CASMailbox -Identity <Username> -SmtpClientAuthenticationDisabled $false). For the "
    "whole tenant: Exchange admin center > Settings > Mail flow > untick 'Turn off SMTP AUTH "
    "protocol for your organization' (PowerShell: Set-TransportConfig "
    "-SmtpClientAuthenticationDisabled $false). Changes can take an hour. With Basic "
    "authentication, Microsoft turns it off by default at the end of December 2026 anyway: "
    "switch Authentication to OAuth, or to API mode (Microsoft Graph), which does not need "
    "SMTP AUTH."
)
SEND_AS_HINT = (
    "The account that signs in is not allowed to send as the From Address. Give it "
    "'Send As' permission on that mailbox, or set the From Address to the account's "
    "own address (for Google: the account or one of its verified aliases)."
)


ANY_5XX = range(500, 600)


@dataclass(frozen=True)
class SmtpReplyRule:
    """A known SMTP reply: matched by code (or a range) and a fragment of its text (lower case)."""

    code: int | range
    fragment: str
    error: type[MailError]
    message: str
    hint: str

    def matches(self, code: int, lowered_text: str) -> bool:
        wanted = code == self.code if isinstance(self.code, int) else code in self.code
        return wanted and self.fragment in lowered_text


# Most specific first: the first matching row wins.
SMTP_REPLY_RULES: tuple[SmtpReplyRule, ...] = (
    SmtpReplyRule(
        535,
        "5.7.139",
        AuthorizationError,
        "The server refused to authenticate: SMTP AUTH is disabled.",
        SMTP_AUTH_DISABLED_HINT,
    ),
    SmtpReplyRule(
        535,
        "5.7.3",
        AuthenticationError,
        "The server rejected the sign-in (Microsoft 365: wrong username or password, "
        "or an OAuth token issued for a different account).",
        "Check the Username and Password. With OAuth, the Username must be the account "
        "that authorized the app; Reconnect if the grant was made with another account. "
        "Microsoft 365 also answers 5.7.3 when Security defaults or a policy block Basic "
        "authentication: switch to OAuth.",
    ),
    SmtpReplyRule(
        535,
        "5.7.8",
        AuthenticationError,
        "The server rejected the username and password or token.",
        "Check the Username and Password (the Username is usually the full address). "
        "For Gmail with Basic authentication, use an app password (needs 2-Step "
        "Verification) or switch to OAuth.",
    ),
    SmtpReplyRule(
        550,
        "5.7.30",
        AuthenticationError,
        "Microsoft 365 no longer accepts Basic authentication (username and password) for "
        "client submission in this tenant.",
        "Microsoft turns Basic authentication for SMTP AUTH off by default at the end of "
        "December 2026, and removes it in 2027. Switch Authentication to OAuth (Sign-in: "
        "Application needs no user sign-in), or the Mode to API (Microsoft Graph). An "
        "administrator can turn Basic authentication back on for the tenant only until "
        "that removal.",
    ),
    SmtpReplyRule(
        530,
        "",
        AuthenticationError,
        "The server requires authentication before it accepts mail.",
        "Choose Basic or OAuth authentication and enter the account's credentials.",
    ),
    SmtpReplyRule(
        535,
        "",
        AuthenticationError,
        "The server rejected the credentials.",
        "Check the Username and Password (or Reconnect the OAuth authorization).",
    ),
    SmtpReplyRule(
        534,
        "",
        AuthenticationError,
        "The server wants a different authentication method.",
        "The server may require OAuth, or an app password, for this account.",
    ),
    # Exchange Online refuses Send As at the end of DATA with 554 5.2.252 SendAsDenied
    # (550 5.7.60 at MAIL FROM in older tenants): the code varies, the word does not.
    SmtpReplyRule(
        ANY_5XX,
        "sendasdenied",
        AuthorizationError,
        "The server refused the From Address.",
        SEND_AS_HINT,
    ),
    # Postfix (smtpd_sender_login_maps): "553 5.7.1 <x@y>: Sender address rejected: not
    # owned by user z", or "... not logged in" when nobody signed in.
    SmtpReplyRule(
        ANY_5XX,
        "not owned by user",
        AuthorizationError,
        "The server refused the From Address.",
        SEND_AS_HINT,
    ),
    SmtpReplyRule(
        ANY_5XX,
        "sender address rejected: not logged in",
        AuthenticationError,
        "The server only accepts this From Address after signing in.",
        "Choose Basic or OAuth authentication and enter the credentials of the account "
        "that owns the From Address.",
    ),
    SmtpReplyRule(550, "5.7.57", AuthenticationError, "The server requires authentication.", ""),
    SmtpReplyRule(
        550,
        "send as",
        AuthorizationError,
        "The server refused the From Address.",
        SEND_AS_HINT,
    ),
    SmtpReplyRule(
        550,
        "5.7.60",
        AuthorizationError,
        "The server refused the From Address.",
        SEND_AS_HINT,
    ),
    SmtpReplyRule(
        554,
        "5.7.1",
        AuthorizationError,
        "The server refused the message from this sender.",
        SEND_AS_HINT,
    ),
    SmtpReplyRule(
        553,
        "5.7.1",
        AuthorizationError,
        "The server refused the From Address.",
        SEND_AS_HINT,
    ),
    SmtpReplyRule(
        421,
        "",
        RateLimited,
        "The server is not accepting mail right now.",
        "This is usually temporary (busy server or too many connections); try again later.",
    ),
    SmtpReplyRule(
        452,
        "",
        RateLimited,
        "The server refused more recipients or messages for now.",
        "Try again later; the account may have reached its sending limit.",
    ),
    SmtpReplyRule(
        552,
        "",
        ProviderError,
        "The message is too large for the server.",
        "Reduce the size of attachments.",
    ),
)

RECIPIENT_HINT = "Check the recipient's address; the server does not accept mail for it."


def smtp_reply_error(step: str, code: int, reply: bytes | str) -> MailError:
    """The error for an SMTP reply at a given step (MAIL, RCPT, DATA, AUTH...)."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    text = " ".join(text.split())
    lowered = text.lower()
    for rule in SMTP_REPLY_RULES:
        if rule.matches(code, lowered):
            return rule.error(
                rule.message, step=step, code=str(code), provider_text=text, hint=rule.hint
            )
    if step == "Recipients":
        return RecipientsRefused(
            "The server refused the recipient.",
            step=step,
            code=str(code),
            provider_text=text,
            hint=RECIPIENT_HINT,
        )
    temporary = 400 <= code < 500
    return ProviderError(
        f"The server answered {code}: {text}",
        step=step,
        code=str(code),
        provider_text=text,
        hint="This is a temporary failure; try again later." if temporary else "",
    )


def network_error(step: str, err: BaseException, host: str, port: int, timeout: float) -> MailError:
    """The error for a failure to reach or talk to ``host:port`` (DNS, TCP, TLS, timeout)."""
    where = f"{host}:{port}"
    if isinstance(err, socket.gaierror):
        return MailConnectionError(
            f"The name {host} could not be resolved.",
            step=step,
            code="DNS",
            provider_text=str(err),
            hint="Check the spelling of Server Name or IP, and that this server can resolve it.",
        )
    if isinstance(err, ssl.SSLCertVerificationError):
        return certificate_error(step, err, host)
    if isinstance(err, ConnectionRefusedError):
        return MailConnectionError(
            f"{where} refused the connection.",
            step=step,
            code="ECONNREFUSED",
            hint=f"Nothing accepts connections on that port. Check the Port Number. {PORT_ADVICE}",
        )
    if isinstance(err, TimeoutError | socket.timeout):
        limit = deadline.current_limit()
        if limit is not None and deadline.expired():
            # The step's own timeout was cut short by the whole test's time limit.
            return deadline.time_limit_error(step, limit)
        return MailConnectionError(
            f"{where} did not answer within {timeout:g} seconds.",
            step=step,
            code="TIMEOUT",
            hint="A firewall may be dropping the connection, or the port is wrong (many "
            f"networks block outgoing port 25). {PORT_ADVICE}",
        )
    if isinstance(err, ssl.SSLError):
        return TLSError(
            "The TLS handshake failed.",
            step=step,
            code=getattr(err, "reason", None) or "TLS",
            provider_text=str(err),
            hint="The server may not speak TLS on this port: SSL is for ports like 465, "
            f"TLS (STARTTLS) for ports like 587. {PORT_ADVICE}",
        )
    return MailConnectionError(
        f"The connection to {where} failed: {err.__class__.__name__}.",
        step=step,
        code=err.__class__.__name__,
        provider_text=str(err),
        hint="Check the Server Name or IP and Port Number, and that this server may connect out.",
    )


def certificate_error(step: str, err: ssl.SSLCertVerificationError, host: str) -> TLSError:
    """A certificate that failed verification, with the reason in plain words."""
    reason = err.verify_message or str(err)
    lowered = reason.lower()
    if "hostname mismatch" in lowered or "ip address mismatch" in lowered:
        hint = (
            f"The server's certificate is not issued for {host}. Use the name the "
            "certificate is issued for in Server Name or IP."
        )
    elif "expired" in lowered:
        hint = "The server's certificate has expired; its administrator must renew it."
    else:
        hint = (
            "The certificate is not signed by a trusted authority. If the server uses a "
            "private CA, point MAILCONFIG_CA_FILE at that CA's certificate."
        )
    return TLSError(
        f"The server's certificate is not valid: {reason}.",
        step=step,
        code="CERTIFICATE",
        provider_text=reason,
        hint=hint,
    )


def http_failure(
    step: str, err: requests.RequestException, url: str, timeout: float | None = None
) -> MailError:
    """The error for an HTTPS request to a provider that got no answer (DNS, TLS, timeout).

    ``timeout`` is the one the request used (the session's), for the message.
    """
    if isinstance(err, RedirectRefused):
        return err.mail_error(step)
    parts = urlsplit(url)
    host, port = parts.hostname or url, parts.port or 443
    timeout = timeout if timeout is not None else settings.MAILCONFIG_TIMEOUT
    if isinstance(err, requests.Timeout):
        return network_error(step, TimeoutError(), host, port, timeout)
    cause = _root_cause(err)
    if cause is not None:
        return network_error(step, cause, host, port, timeout)
    if isinstance(err, requests.exceptions.SSLError):
        return network_error(step, ssl.SSLError(str(err)), host, port, timeout)
    return network_error(step, err, host, port, timeout)


_KNOWN_CAUSES = (
    socket.gaierror,
    ssl.SSLCertVerificationError,
    ConnectionRefusedError,
    TimeoutError,
)


def _root_cause(err: BaseException) -> BaseException | None:
    """Dig through requests' and urllib3's wrappers for the socket or TLS error inside."""
    seen: set[int] = set()
    pending: list[object] = [err]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, _KNOWN_CAUSES):
            return current
        pending.extend(current.args)
        pending.extend([getattr(current, "reason", None), current.__cause__, current.__context__])
    return None
