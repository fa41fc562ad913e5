"""SMTP servers' replies in plain words: the known ones (Microsoft 365, Gmail, Postfix...)
as a table of ``KnownFailure`` rows, and the error for any reply at any step.

The server's code and text are kept on the error for support; hints say what to
change, in the console's own words.
"""

from __future__ import annotations

from sender.errors import (
    AuthenticationError,
    AuthorizationError,
    MailError,
    MessageRefused,
    ProviderError,
    RateLimited,
    RecipientsRefused,
    SenderRefused,
)
from sender.known_failures import SEND_AS_HINT, KnownFailure, find

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
FROM_REFUSED = "The server refused the From Address."
RECIPIENT_HINT = "Check the recipient's address; the server does not accept mail for it."

ANY_5XX = range(500, 600)

# Matched by reply code (or a range) and a fragment of the reply's text.
# Most specific first: the first matching row wins.
SMTP_REPLIES: tuple[KnownFailure, ...] = (
    KnownFailure(
        535,
        AuthorizationError,
        "The server refused to authenticate: SMTP AUTH is disabled.",
        SMTP_AUTH_DISABLED_HINT,
        contains="5.7.139",
    ),
    KnownFailure(
        535,
        AuthenticationError,
        "The server rejected the sign-in (Microsoft 365: wrong username or password, "
        "or an OAuth token issued for a different account).",
        "Check the Username and Password. With OAuth, the Username must be the account "
        "that authorized the app; Reconnect if the grant was made with another account. "
        "Microsoft 365 also answers 5.7.3 when Security defaults or a policy block Basic "
        "authentication: switch to OAuth.",
        contains="5.7.3",
    ),
    KnownFailure(
        535,
        AuthenticationError,
        "The server rejected the username and password or token.",
        "Check the Username and Password (the Username is usually the full address). "
        "For Gmail with Basic authentication, use an app password (needs 2-Step "
        "Verification) or switch to OAuth.",
        contains="5.7.8",
    ),
    KnownFailure(
        550,
        AuthenticationError,
        "Microsoft 365 no longer accepts Basic authentication (username and password) for "
        "client submission in this tenant.",
        "Microsoft turns Basic authentication for SMTP AUTH off by default at the end of "
        "December 2026, and removes it in 2027. Switch Authentication to OAuth (Sign-in: "
        "Application needs no user sign-in), or the Mode to API (Microsoft Graph). An "
        "administrator can turn Basic authentication back on for the tenant only until "
        "that removal.",
        contains="5.7.30",
    ),
    KnownFailure(
        530,
        AuthenticationError,
        "The server requires authentication before it accepts mail.",
        "Choose Basic or OAuth authentication and enter the account's credentials.",
    ),
    KnownFailure(
        535,
        AuthenticationError,
        "The server rejected the credentials.",
        "Check the Username and Password (or Reconnect the OAuth authorization).",
    ),
    KnownFailure(
        534,
        AuthenticationError,
        "The server wants a different authentication method.",
        "The server may require OAuth, or an app password, for this account.",
    ),
    # Exchange Online refuses Send As at the end of DATA with 554 5.2.252 SendAsDenied
    # (550 5.7.60 at MAIL FROM in older tenants): the code varies, the word does not.
    KnownFailure(ANY_5XX, SenderRefused, FROM_REFUSED, SEND_AS_HINT, contains="sendasdenied"),
    # Postfix (smtpd_sender_login_maps): "553 5.7.1 <x@y>: Sender address rejected: not
    # owned by user z", or "... not logged in" when nobody signed in.
    KnownFailure(ANY_5XX, SenderRefused, FROM_REFUSED, SEND_AS_HINT, contains="not owned by user"),
    KnownFailure(
        ANY_5XX,
        AuthenticationError,
        "The server only accepts this From Address after signing in.",
        "Choose Basic or OAuth authentication and enter the credentials of the account "
        "that owns the From Address.",
        contains="sender address rejected: not logged in",
    ),
    KnownFailure(
        550, AuthenticationError, "The server requires authentication.", "", contains="5.7.57"
    ),
    KnownFailure(550, SenderRefused, FROM_REFUSED, SEND_AS_HINT, contains="send as"),
    KnownFailure(550, SenderRefused, FROM_REFUSED, SEND_AS_HINT, contains="5.7.60"),
    KnownFailure(
        554,
        SenderRefused,
        "The server refused the message from this sender.",
        SEND_AS_HINT,
        contains="5.7.1",
    ),
    KnownFailure(553, SenderRefused, FROM_REFUSED, SEND_AS_HINT, contains="5.7.1"),
    KnownFailure(
        421,
        RateLimited,
        "The server is not accepting mail right now.",
        "This is usually temporary (busy server or too many connections); try again later.",
    ),
    KnownFailure(
        452,
        RateLimited,
        "The server refused more recipients or messages for now.",
        "Try again later; the account may have reached its sending limit.",
    ),
    KnownFailure(
        552,
        MessageRefused,
        "The message is too large for the server.",
        "Reduce the size of attachments.",
    ),
)


def smtp_reply_error(step: str, code: int, reply: bytes | str) -> MailError:
    """The error for an SMTP reply at a given step (MAIL, RCPT, DATA, AUTH...)."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    text = " ".join(text.split())
    row = find(SMTP_REPLIES, code, text=text)
    if row is not None:
        return row.error_for(step=step, code=str(code), provider_text=text)
    # RFC 5321 4.2.1: a 4yz reply is a transient negative completion, 5yz a permanent one.
    temporary = 400 <= code < 500
    if step == "Recipients":
        return RecipientsRefused(
            "The server refused the recipient.",
            step=step,
            code=str(code),
            provider_text=text,
            hint=RECIPIENT_HINT,
            transient=temporary,
        )
    return ProviderError(
        f"The server answered {code}: {text}",
        step=step,
        code=str(code),
        provider_text=text,
        hint="This is a temporary failure; try again later." if temporary else "",
        transient=temporary,
    )
