"""Check permissions: what the configured account may do, found without sending anything.

One function per kind of transport, each returning a list of findings (ok, warn or
fail, with a hint). The whole check is limited to ``MAILCONFIG_TIMEOUT`` seconds,
like Test Mail.

How each provider is asked without a message going out:

- **Microsoft Graph**: the client-credentials token's ``roles`` must contain
  ``Mail.Send``. Then ``POST /users/{From Address}/sendMail`` with a message that has
  no recipients. Graph checks the app's access to the mailbox before it looks at the
  message, so the answer tells: 403 ``ErrorAccessDenied`` (no access: permission or an
  Application Access Policy), 404 ``ErrorInvalidUser`` (no such mailbox), or 400
  ``ErrorInvalidRecipients`` ("contains no recipients": the mailbox exists and the app
  may send as it). A message without recipients cannot be delivered, whatever happens.
  ``GET /users/{id}`` would need ``User.Read.All`` and ``mailFolders`` ``Mail.Read``,
  which a send-only app rightly lacks.
- **Gmail API**: a token for the From Address from the service account with the
  ``gmail.send`` scope: Google issues it only when domain-wide delegation grants that
  scope to the service account's client ID. Then ``messages.send`` with a message
  without recipients: 400 "Recipient address required" shows the API is enabled and the
  mailbox can send; 403 and ``failedPrecondition`` say why not.
- **SMTP**: connect and secure the connection as sending would, read which AUTH
  mechanisms the server offers (after STARTTLS), then log in when credentials are
  configured (a login sends nothing; Microsoft 365 refuses it with 5.7.139 when SMTP
  AUTH is disabled for the tenant or mailbox, which EHLO does not show).
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from email.message import EmailMessage as MimeMessage

import requests
from django.conf import settings

from sender.deadline import time_limit
from sender.errors import MailError
from sender.network_errors import http_failure
from sender.smtp_replies import SMTP_AUTH_DISABLED_HINT
from sender.tokens import AccessToken, jwt_claims
from sender.transports.smtp_connection import BoundedReplies
from settings_app.microsoft_365 import (
    BASIC_AUTH_RETIREMENT,
    basic_auth_at_risk,
    is_microsoft_365_host,
)
from settings_app.models import Mode, Provider, Security
from settings_app.values import MailSettings

from .transports.http_api import HttpApiTransport
from .transports.smtp import BASIC_MECHANISMS, SmtpTransport

logger = logging.getLogger(__name__)

OK, WARN, FAIL = "ok", "warn", "fail"
PROBE_SUBJECT = "Mail Console permission check (has no recipients, never delivered)"
APPLICATION_ACCESS_POLICY_HINT = (
    "The app has Mail.Send, so an Exchange Application Access Policy (or RBAC for "
    "Applications) most likely keeps it away from this mailbox: add the From Address to "
    "the policy's group (Test-ApplicationAccessPolicy -Identity <From Address> -AppId "
    "<Client ID> shows the verdict), or use a mailbox the policy allows. Policy changes "
    "can take an hour to apply."
)


@dataclass(frozen=True)
class Finding:
    """One thing the check found: ``status`` is "ok", "warn" or "fail"."""

    status: str
    text: str
    hint: str = ""
    code: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK


def check_permissions(config: MailSettings, *, timeout: float | None = None) -> list[Finding]:
    """Check what the configuration's account may do, within ``MAILCONFIG_TIMEOUT``."""
    limit = timeout if timeout is not None else settings.MAILCONFIG_TIMEOUT
    findings: list[Finding] = []
    try:
        with time_limit(limit):
            if config.mode == Mode.API and config.api_provider == Provider.GOOGLE:
                check_gmail(config, findings)
            elif config.mode == Mode.API:
                check_graph(config, findings)
            else:
                check_smtp(config, findings)
    except MailError as err:
        findings.append(failed(err))
    except Exception:
        # Unknown failures are logged for the operator (no secrets in our exceptions).
        logger.exception("Check permissions failed unexpectedly")
        findings.append(
            Finding(
                FAIL,
                "An unexpected error stopped the check.",
                "The details are in the server log; please report them.",
            )
        )
    return scrubbed(findings, config)


def failed(err: MailError, prefix: str = "") -> Finding:
    """A failed finding from an error, with the server's own words for support."""
    text = prefix + err.message
    if err.provider_text and err.provider_text not in text:
        text += f" (server said: {err.provider_text})"
    return Finding(FAIL, text, err.hint, err.code)


# -- Microsoft Graph ------------------------------------------------------------------


def check_graph(config: MailSettings, findings: list[Finding]) -> None:
    """Token roles contain Mail.Send; the From Address is a mailbox the app may send as."""
    from .transports.graph import GraphTransport, graph_error

    transport = GraphTransport(config)
    token = transport.token_provider().get_token()
    findings.append(Finding(OK, f"Token issued for the app by {transport.identity_url}."))
    granted = tuple(jwt_claims(token.token).get("roles", ()))
    roles = ", ".join(granted) or "none"
    if "Mail.Send" not in granted:
        findings.append(
            Finding(
                FAIL,
                f"The token's application permissions (roles) lack Mail.Send; it has: {roles}.",
                "Add the Microsoft Graph application permission Mail.Send (not the delegated "
                "one) to the app and grant admin consent (App registrations > the app > API "
                "permissions). New consent reaches tokens within minutes.",
                "Mail.Send",
            )
        )
        findings.append(
            Finding(WARN, "The mailbox was not checked: without Mail.Send Graph refuses it.")
        )
        return
    findings.append(Finding(OK, f"The token's roles contain Mail.Send ({roles})."))
    response = _post_graph_probe(transport, token)
    mailbox = config.from_address
    code = _graph_code(response)
    if response.status_code == 400 and code == "ErrorInvalidRecipients":
        findings.append(
            Finding(
                OK,
                f"The mailbox {mailbox} exists and the app may send as it (Graph took a "
                "message without recipients up to its recipient check; nothing was sent).",
            )
        )
    elif response.status_code == 202:
        findings.append(
            Finding(
                WARN,
                f"Graph accepted a message without recipients for {mailbox}: the app may "
                "send as it, but nothing can have been delivered.",
            )
        )
    elif response.status_code == 403 and code == "ErrorAccessDenied":
        said = graph_error(response).provider_text
        findings.append(
            Finding(
                FAIL,
                f"Graph denied the app access to the mailbox {mailbox}"
                + (f" (Graph said: {said})." if said else "."),
                APPLICATION_ACCESS_POLICY_HINT,
                code,
            )
        )
    else:
        error = graph_error(response)
        findings.append(failed(error, prefix=f"{mailbox}: "))


def _post_graph_probe(transport: HttpApiTransport, token: AccessToken) -> requests.Response:
    endpoint = transport.endpoint
    probe = {
        "message": {"subject": PROBE_SUBJECT, "toRecipients": []},
        "saveToSentItems": False,
    }
    try:
        return transport.session.post(
            endpoint, json=probe, headers={"Authorization": f"Bearer {token.token}"}
        )
    except requests.RequestException as err:
        raise http_failure("Check mailbox", err, endpoint) from err


def _graph_code(response: requests.Response) -> str:
    try:
        return str(response.json().get("error", {}).get("code", ""))
    except (ValueError, AttributeError):
        return ""


# -- Gmail API ------------------------------------------------------------------------


def check_gmail(config: MailSettings, findings: list[Finding]) -> None:
    """A delegated token for the From Address (delegation and gmail.send scope), then the API."""
    from .service_account import GMAIL_SEND_SCOPE
    from .transports.gmail import GmailTransport, gmail_error

    transport = GmailTransport(config)
    client_id = _service_account_client_id(config)
    try:
        token = transport.token_provider().get_token()
    except MailError as err:
        findings.append(failed(err, prefix=f"No token for {config.from_address}: "))
        return
    findings.append(
        Finding(
            OK,
            f"Domain-wide delegation is in place: Google issued a token for "
            f"{config.from_address} to the service account (client ID {client_id}).",
        )
    )
    scopes = token.scopes or ()
    if GMAIL_SEND_SCOPE in scopes:
        # Google issues a delegated token only when every scope asked for is delegated.
        findings.append(Finding(OK, f"The scope {GMAIL_SEND_SCOPE} is granted."))
    else:
        findings.append(
            Finding(
                WARN,
                f"The token does not name the scope {GMAIL_SEND_SCOPE}.",
                f"Delegate {GMAIL_SEND_SCOPE} to client ID {client_id} in the Google Admin "
                "console (Security > API controls > Domain-wide delegation).",
            )
        )
    response = _post_gmail_probe(transport, token, config)
    if response.status_code == 400 and _gmail_reason(response) == "invalidArgument":
        findings.append(
            Finding(
                OK,
                f"The Gmail API is enabled and {config.from_address} can send (Gmail refused "
                "a message without recipients; nothing was sent).",
            )
        )
    elif response.status_code == 200:
        findings.append(
            Finding(
                WARN,
                f"Gmail accepted a message without recipients from {config.from_address}: "
                "it can send, but nothing can have been delivered.",
            )
        )
    else:
        findings.append(failed(gmail_error(response), prefix=f"{config.from_address}: "))


def _service_account_client_id(config: MailSettings) -> str:
    try:
        return str(config.service_account_info.get("client_id", "")) or "?"
    except (ValueError, AttributeError):
        return "?"


def _post_gmail_probe(
    transport: HttpApiTransport, token: AccessToken, config: MailSettings
) -> requests.Response:
    message = MimeMessage()
    message["From"] = config.from_address
    message["Subject"] = PROBE_SUBJECT
    message.set_content("This message has no recipients and cannot be delivered.")
    raw = base64.urlsafe_b64encode(message.as_bytes()).decode("ascii")
    endpoint = transport.endpoint
    try:
        return transport.session.post(
            endpoint, json={"raw": raw}, headers={"Authorization": f"Bearer {token.token}"}
        )
    except requests.RequestException as err:
        raise http_failure("Check mailbox", err, endpoint) from err


def _gmail_reason(response: requests.Response) -> str:
    try:
        errors = response.json().get("error", {}).get("errors") or [{}]
        return str(errors[0].get("reason", ""))
    except (ValueError, AttributeError, IndexError):
        return ""


# -- SMTP -----------------------------------------------------------------------------


class _ProbingSmtpTransport(SmtpTransport):
    """The SMTP transport that remembers what the server offered before authenticating."""

    offered: dict[str, str] | None = None

    def _authenticate(self, connection: BoundedReplies) -> None:
        self.offered = dict(connection.esmtp_features)
        super()._authenticate(connection)


def check_smtp(config: MailSettings, findings: list[Finding]) -> None:
    """The server offers AUTH (after STARTTLS) with a usable mechanism; the login works."""
    from .factory import smtp_token_provider

    microsoft = is_microsoft_365_host(config.server_name)
    token_provider = None
    if config.uses_xoauth2:
        try:
            token_provider = smtp_token_provider(config)
        except MailError as err:
            findings.append(failed(err))
    transport = _ProbingSmtpTransport(config, token_provider=token_provider)
    try:
        transport.open()
    except MailError as err:
        if transport.offered is None:
            findings.append(failed(err, prefix=f"{config.server_name}:{transport.port}: "))
            return
        _auth_offer_findings(config, transport.offered, microsoft, findings)
        if err.code not in ("NO-AUTH", "NO-XOAUTH2"):  # already said: nothing to log in with
            prefix = "Login refused: " if err.step == "Authenticate" else ""
            findings.append(failed(err, prefix=prefix))
        return
    finally:
        transport.close()
        transport.remember_certificate()
    assert transport.offered is not None
    _auth_offer_findings(config, transport.offered, microsoft, findings)
    if config.uses_xoauth2 or config.username:
        how = "XOAUTH2" if config.uses_xoauth2 else "the password"
        if config.method.uses_app_token:
            how = "the app's own XOAUTH2 token (no sign-in)"
        who = config.username or "the authorized account"
        findings.append(Finding(OK, f"Login as {who} with {how} accepted (nothing was sent)."))
    if basic_auth_at_risk(lambda name: getattr(config, name)):
        findings.append(
            Finding(WARN, "Basic authentication against Microsoft 365.", BASIC_AUTH_RETIREMENT)
        )


def _auth_offer_findings(
    config: MailSettings, offered: dict[str, str], microsoft: bool, findings: list[Finding]
) -> None:
    wheres: dict[str, str] = {Security.TLS: "after STARTTLS", Security.SSL: "over SSL"}
    where = wheres.get(config.security, "on the unencrypted connection")
    securities: dict[str, str] = {
        Security.TLS: "The connection is encrypted with STARTTLS.",
        Security.SSL: "The connection is encrypted with SSL (implicit TLS).",
    }
    security = securities.get(config.security)
    if security:
        findings.append(Finding(OK, f"Connected to {config.server_name}. {security}"))
    else:
        findings.append(
            Finding(
                WARN,
                f"Connected to {config.server_name} without encryption (Security: None).",
                "Credentials and mail cross the network in clear: choose TLS or SSL if the "
                "server offers it.",
            )
        )
    mechanisms = sorted(set(offered.get("auth", "").upper().split()))
    if not mechanisms:
        findings.append(_no_auth_finding(config, where, microsoft))
        return
    findings.append(Finding(OK, f"The server offers AUTH {where}: {', '.join(mechanisms)}."))
    if config.uses_xoauth2 and "XOAUTH2" not in mechanisms:
        findings.append(
            Finding(
                FAIL,
                "OAuth is selected, but the server does not offer XOAUTH2.",
                "Check the Server Name: Microsoft 365 is smtp.office365.com, Gmail is "
                "smtp.gmail.com, both with TLS on port 587.",
                "NO-XOAUTH2",
            )
        )
    elif (
        not config.uses_xoauth2
        and config.username
        and not any(mechanism in mechanisms for mechanism in BASIC_MECHANISMS)
    ):
        findings.append(
            Finding(
                FAIL,
                "Basic authentication needs AUTH PLAIN or LOGIN, which the server does not offer.",
                "If the server only offers XOAUTH2, choose OAuth.",
                "NO-AUTH",
            )
        )
    if microsoft and "XOAUTH2" in mechanisms:
        findings.append(
            Finding(
                OK,
                "Microsoft 365 offers AUTH even where SMTP AUTH is disabled for the tenant or "
                "the mailbox; only a login shows that (refused with 535 5.7.139).",
            )
        )
    if not config.username and not config.uses_xoauth2:
        findings.append(
            Finding(
                WARN,
                "No Username: mail is sent without logging in, so no login was tried.",
                "Servers accept that only from addresses they trust as a relay; enter the "
                "account's Username and Password otherwise.",
            )
        )


def _no_auth_finding(config: MailSettings, where: str, microsoft: bool) -> Finding:
    if microsoft:
        return Finding(
            FAIL,
            f"SMTP AUTH is disabled: Microsoft 365 offers no AUTH {where}.",
            "Exchange Online offers AUTH only after STARTTLS: use TLS on port 587. If it "
            "still offers none, SMTP AUTH (authenticated client submission) is turned off: "
            + SMTP_AUTH_DISABLED_HINT,
            "NO-AUTH",
        )
    needs_login = config.uses_xoauth2 or bool(config.username)
    hint = (
        "Servers often offer AUTH only after TLS: choose TLS or SSL."
        if config.security == Security.NONE
        else "SMTP AUTH is disabled on this server (or this port is for relaying): use the "
        "server's submission port (usually 587 with TLS) or ask its administrator."
    )
    return Finding(
        FAIL if needs_login else WARN,
        f"SMTP AUTH is disabled: the server offers no AUTH {where}.",
        hint,
        "NO-AUTH",
    )


def scrubbed(findings: list[Finding], config: MailSettings) -> list[Finding]:
    """The findings with any configured secret a server echoed replaced by "[hidden]"."""
    # Longest first: a secret inside another (a key inside its certificate PEM) is hidden
    # as part of the longer one.
    secrets = sorted(config.secret_values, key=len, reverse=True)
    if not secrets:
        return findings
    cleaned = []
    for finding in findings:
        text, hint = finding.text, finding.hint
        for secret in secrets:
            text, hint = text.replace(secret, "[hidden]"), hint.replace(secret, "[hidden]")
        cleaned.append(Finding(finding.status, text, hint, finding.code))
    return cleaned
