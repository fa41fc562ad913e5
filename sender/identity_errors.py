"""Identity providers' error codes in plain words, with what the admin should do.

Used by every token request (client credentials, service account, refresh) and by
the consent callback. A table per provider: a known code is a row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sender.errors import (
    AuthenticationError,
    AuthorizationError,
    ConfigurationError,
    MailError,
    ProviderError,
)

RECONNECT = "Reconnect the authorization on the Mail Server page."


class GrantInvalid(AuthenticationError):
    """The refresh token was refused (``invalid_grant``): the admin must authorize again."""


def as_grant_invalid(err: MailError) -> GrantInvalid:
    """The same error, typed so the grant can be marked expired."""
    return GrantInvalid(
        err.message, step=err.step, code=err.code, provider_text=err.provider_text, hint=err.hint
    )


@dataclass(frozen=True)
class Explanation:
    """What a provider's error code means and how to fix it ({placeholders} from context)."""

    error: type[MailError]
    message: str
    hint: str


MICROSOFT: dict[str, Explanation] = {
    "AADSTS7000215": Explanation(
        AuthenticationError,
        "Microsoft rejected the Client Secret.",
        "Copy the secret's Value (not its Secret ID) from Azure portal > App registrations > "
        "the app > Certificates & secrets, and enter it again.",
    ),
    "AADSTS7000222": Explanation(
        AuthenticationError,
        "The Client Secret has expired.",
        "Create a new client secret under Certificates & secrets of the app registration "
        "and enter its Value here.",
    ),
    "AADSTS700027": Explanation(
        AuthenticationError,
        "Microsoft did not accept the certificate: it is not registered on the app, or its "
        "signature did not verify.",
        "Upload the certificate's public part (.cer or .pem) under App registrations > the app "
        "> Certificates & secrets > Certificates, and check that its thumbprint is the one "
        "shown on this page.",
    ),
    "AADSTS700024": Explanation(
        AuthenticationError,
        "Microsoft refused the certificate's signed assertion as outside its valid time.",
        "Check this server's clock (it must be within a few minutes of the real time).",
    ),
    "AADSTS700016": Explanation(
        ConfigurationError,
        "No application with this Client ID exists in the tenant.",
        "Check the Client ID (Application (client) ID on the app's Overview page) and the "
        "Tenant ID; the app must be registered in, or consented to, this tenant.",
    ),
    "AADSTS90002": Explanation(
        ConfigurationError,
        "Microsoft does not know this tenant.",
        "Check the Tenant ID (Directory (tenant) ID) and the Azure environment: a US "
        "Government or China tenant is not found in Azure Cloud, and the other way round.",
    ),
    "AADSTS65001": Explanation(
        AuthorizationError,
        "The app has not been given consent for the permissions it asks for.",
        "In the app registration, open API permissions and choose 'Grant admin consent', "
        "or sign in with an account allowed to consent.",
    ),
    "AADSTS65004": Explanation(
        AuthorizationError,
        "The consent was declined.",
        "Authorize again and accept the requested permissions.",
    ),
    "AADSTS50011": Explanation(
        ConfigurationError,
        "The redirect URI is not registered for this app.",
        "Add exactly {redirect_uri} under Authentication > Web > Redirect URIs of the app "
        "registration, then try again.",
    ),
    "AADSTS50126": Explanation(
        AuthenticationError,
        "The username or password was wrong at Microsoft's sign-in.",
        "Sign in again with the mailbox account's password.",
    ),
    "AADSTS50076": Explanation(
        AuthorizationError,
        "Multi-factor authentication is required.",
        "Complete the sign-in interactively (Reconnect); a Conditional Access policy asks for MFA.",
    ),
    "AADSTS53003": Explanation(
        AuthorizationError,
        "A Conditional Access policy blocked the sign-in.",
        "Ask the tenant's administrator to allow this app or location in Conditional Access.",
    ),
    "AADSTS70011": Explanation(
        ConfigurationError,
        "Microsoft refused the requested scope.",
        "Check the Azure environment: its SMTP and Graph scopes must match the tenant's cloud.",
    ),
    "AADSTS70008": Explanation(AuthenticationError, "The authorization has expired.", RECONNECT),
    "AADSTS700082": Explanation(
        AuthenticationError,
        "The authorization expired after 90 days without use.",
        RECONNECT,
    ),
    "AADSTS50173": Explanation(
        AuthenticationError,
        "The authorization was revoked (the account's password changed or sessions were revoked).",
        RECONNECT,
    ),
    "AADSTS500011": Explanation(
        ConfigurationError,
        "The resource (Exchange or Graph) was not found in this tenant.",
        "Check the Azure environment, and that the tenant has Exchange Online.",
    ),
}

MICROSOFT_ERRORS: dict[str, Explanation] = {
    "access_denied": Explanation(
        AuthorizationError,
        "The authorization was declined at Microsoft.",
        "Authorize again and accept the requested permissions, or ask an administrator to "
        "grant consent.",
    ),
    "invalid_grant": Explanation(
        AuthenticationError, "The authorization is no longer valid.", RECONNECT
    ),
}

GOOGLE: dict[str, Explanation] = {
    "unauthorized_client": Explanation(
        AuthorizationError,
        "Google refused a token to the service account: domain-wide delegation is missing.",
        "In the Google Admin console open Security > Access and data control > API controls "
        "> Manage Domain Wide Delegation, and add the service account's Client ID "
        "{client_id} with the scope https://www.googleapis.com/auth/gmail.send. A new "
        "delegation can take from a few minutes up to 24 hours to take effect.",
    ),
    "invalid_client": Explanation(
        AuthenticationError,
        "Google did not accept the Client ID or Client Secret.",
        "Copy both again from Google Cloud console > APIs & Services > Credentials > the "
        "OAuth 2.0 Client ID (type Web application).",
    ),
    "redirect_uri_mismatch": Explanation(
        ConfigurationError,
        "The redirect URI is not registered for this Google OAuth client.",
        "Add exactly {redirect_uri} to the client's Authorized redirect URIs in Google "
        "Cloud console > APIs & Services > Credentials, then try again.",
    ),
    "access_denied": Explanation(
        AuthorizationError,
        "The authorization was declined at Google.",
        "Authorize again and allow access; if the consent screen is 'Internal', sign in with "
        "an account of that Workspace.",
    ),
    "admin_policy_enforced": Explanation(
        AuthorizationError,
        "The Google Workspace administrator does not allow this app.",
        "Ask the Workspace administrator to trust the app under API controls.",
    ),
    "invalid_scope": Explanation(
        ConfigurationError,
        "Google refused the requested scope.",
        "Enable the Gmail API for the project and add the scope to the consent screen.",
    ),
}

# invalid_grant means different things depending on the grant: tell them apart by text.
GOOGLE_INVALID_GRANT: tuple[tuple[str, Explanation], ...] = (
    (
        "invalid email or user id",
        Explanation(
            ConfigurationError,
            "Google does not know the From Address as a user of the Workspace domain.",
            "The From Address must be a Google Workspace user of the domain that delegated "
            "access (consumer @gmail.com addresses cannot be impersonated).",
        ),
    ),
    (
        "invalid jwt signature",
        Explanation(
            AuthenticationError,
            "Google rejected the service account key.",
            "The key may have been deleted or disabled: create a new JSON key for the service "
            "account and upload it.",
        ),
    ),
    (
        "",
        Explanation(
            AuthenticationError,
            "Google says the authorization is no longer valid (expired or revoked).",
            RECONNECT + " Refresh tokens stop working when the user revokes access or changes the "
            "password, and after 7 days while the consent screen is in 'Testing'.",
        ),
    ),
)

AADSTS = re.compile(r"AADSTS\d+")


def first_line(description: str) -> str:
    """Microsoft descriptions carry trace and correlation ids on later lines."""
    return (description or "").strip().splitlines()[0] if description else ""


def microsoft_error(
    error: str, description: str = "", *, step: str, context: dict[str, str] | None = None
) -> MailError:
    """The error for a Microsoft identity platform ``error`` / ``error_description`` pair."""
    match = AADSTS.search(description or "")
    code = match.group(0) if match else error
    explanation = MICROSOFT.get(code) or MICROSOFT_ERRORS.get(error)
    return _build(explanation, code, first_line(description) or error, step, context, "Microsoft")


def google_error(
    error: str, description: str = "", *, step: str, context: dict[str, str] | None = None
) -> MailError:
    """The error for a Google OAuth ``error`` / ``error_description`` pair."""
    explanation = GOOGLE.get(error)
    if error == "invalid_grant":
        lowered = (description or "").lower()
        explanation = next(exp for text, exp in GOOGLE_INVALID_GRANT if text in lowered)
    return _build(explanation, error, description or error, step, context, "Google")


def _build(
    explanation: Explanation | None,
    code: str,
    text: str,
    step: str,
    context: dict[str, str] | None,
    provider: str,
) -> MailError:
    if explanation is None:
        return ProviderError(
            f"{provider} answered with an error: {text}",
            step=step,
            code=code,
            provider_text=text,
        )
    values = _Defaults(context or {})
    return explanation.error(
        explanation.message,
        step=step,
        code=code,
        provider_text=text,
        hint=explanation.hint.format_map(values),
    )


class _Defaults(dict):
    def __missing__(self, key: str) -> str:
        return {"redirect_uri": "the redirect URI shown on the page"}.get(key, f"({key})")
