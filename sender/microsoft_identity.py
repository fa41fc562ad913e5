"""The Microsoft identity platform: its known errors in plain words, and the MSAL app
every Microsoft token comes from (Graph's client credentials here, the SMTP consent
in ``oauth.consent``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import msal
import requests

from sender.errors import (
    AuthenticationError,
    AuthorizationError,
    ConfigurationError,
    MailError,
)
from sender.http import VerifiedSession
from sender.known_failures import RECONNECT, TEMPORARY_OAUTH_ERRORS, KnownFailure, explain
from sender.network_errors import http_failure

# The AADSTS number in the error description first; then the OAuth ``error`` for
# answers whose number is not in the table.
MICROSOFT_IDENTITY_FAILURES: tuple[KnownFailure, ...] = (
    KnownFailure(
        "AADSTS7000215",
        AuthenticationError,
        "Microsoft rejected the Client Secret.",
        "Copy the secret's Value (not its Secret ID) from Azure portal > App registrations > "
        "the app > Certificates & secrets, and enter it again.",
    ),
    KnownFailure(
        "AADSTS7000222",
        AuthenticationError,
        "The Client Secret has expired.",
        "Create a new client secret under Certificates & secrets of the app registration "
        "and enter its Value here.",
    ),
    KnownFailure(
        "AADSTS700027",
        AuthenticationError,
        "Microsoft did not accept the certificate: it is not registered on the app, or its "
        "signature did not verify.",
        "Upload the certificate's public part (.cer or .pem) under App registrations > the app "
        "> Certificates & secrets > Certificates, and check that its thumbprint is the one "
        "shown on this page.",
    ),
    KnownFailure(
        "AADSTS700024",
        AuthenticationError,
        "Microsoft refused the certificate's signed assertion as outside its valid time.",
        "Check this server's clock (it must be within a few minutes of the real time).",
    ),
    KnownFailure(
        "AADSTS700016",
        ConfigurationError,
        "No application with this Client ID exists in the tenant.",
        "Check the Client ID (Application (client) ID on the app's Overview page) and the "
        "Tenant ID; the app must be registered in, or consented to, this tenant.",
    ),
    KnownFailure(
        "AADSTS90002",
        ConfigurationError,
        "Microsoft does not know this tenant.",
        "Check the Tenant ID (Directory (tenant) ID) and the Azure environment: a US "
        "Government or China tenant is not found in Azure Cloud, and the other way round.",
    ),
    KnownFailure(
        "AADSTS65001",
        AuthorizationError,
        "The app has not been given consent for the permissions it asks for.",
        "In the app registration, open API permissions and choose 'Grant admin consent', "
        "or sign in with an account allowed to consent.",
    ),
    KnownFailure(
        "AADSTS65004",
        AuthorizationError,
        "The consent was declined.",
        "Authorize again and accept the requested permissions.",
    ),
    KnownFailure(
        "AADSTS50011",
        ConfigurationError,
        "The redirect URI is not registered for this app.",
        "Add exactly {redirect_uri} under Authentication > Web > Redirect URIs of the app "
        "registration, then try again.",
    ),
    KnownFailure(
        "AADSTS50126",
        AuthenticationError,
        "The username or password was wrong at Microsoft's sign-in.",
        "Sign in again with the mailbox account's password.",
    ),
    KnownFailure(
        "AADSTS50076",
        AuthorizationError,
        "Multi-factor authentication is required.",
        "Complete the sign-in interactively (Reconnect); a Conditional Access policy asks for MFA.",
    ),
    KnownFailure(
        "AADSTS53003",
        AuthorizationError,
        "A Conditional Access policy blocked the sign-in.",
        "Ask the tenant's administrator to allow this app or location in Conditional Access.",
    ),
    KnownFailure(
        "AADSTS70011",
        ConfigurationError,
        "Microsoft refused the requested scope.",
        "Check the Azure environment: its SMTP and Graph scopes must match the tenant's cloud.",
    ),
    KnownFailure("AADSTS70008", AuthenticationError, "The authorization has expired.", RECONNECT),
    KnownFailure(
        "AADSTS700082",
        AuthenticationError,
        "The authorization expired after 90 days without use.",
        RECONNECT,
    ),
    KnownFailure(
        "AADSTS50173",
        AuthenticationError,
        "The authorization was revoked (the account's password changed or sessions were revoked).",
        RECONNECT,
    ),
    KnownFailure(
        "AADSTS500011",
        ConfigurationError,
        "The resource (Exchange or Graph) was not found in this tenant.",
        "Check the Azure environment, and that the tenant has Exchange Online.",
    ),
    KnownFailure(
        "access_denied",
        AuthorizationError,
        "The authorization was declined at Microsoft.",
        "Authorize again and accept the requested permissions, or ask an administrator to "
        "grant consent.",
    ),
    KnownFailure(
        "invalid_grant", AuthenticationError, "The authorization is no longer valid.", RECONNECT
    ),
)

AADSTS = re.compile(r"AADSTS\d+")


def first_line(description: str) -> str:
    """Microsoft descriptions carry trace and correlation ids on later lines."""
    return (description or "").strip().splitlines()[0] if description else ""


def microsoft_error(
    error: str, description: str = "", *, step: str, context: Mapping[str, str] | None = None
) -> MailError:
    """The error for a Microsoft identity platform ``error`` / ``error_description`` pair."""
    match = AADSTS.search(description or "")
    code = match.group(0) if match else error
    text = first_line(description) or error
    return explain(
        MICROSOFT_IDENTITY_FAILURES,
        code,
        error,
        step=step,
        code=code,
        provider_text=text,
        unknown=f"Microsoft answered with an error: {text}",
        context=context,
        transient=error in TEMPORARY_OAUTH_ERRORS or None,
    )


def msal_app(
    *,
    client_id: str,
    client_secret: str | dict[str, str],
    authority: str,
    session: VerifiedSession,
    step: str,
) -> msal.ConfidentialClientApplication:
    """An MSAL confidential client for one app registration in one tenant.

    ``client_secret`` is a secret, or a certificate as ``AppCredential.for_msal()`` gives it.

    MSAL fetches the tenant's OpenID discovery document here, and keeps its token cache
    in the app: callers keep the app per configuration and reuse it.
    """
    try:
        # instance_discovery=False: the authority comes from our settings table
        # (national clouds, test fakes), not from Microsoft's list.
        return msal.ConfidentialClientApplication(
            client_id,
            client_credential=client_secret,
            authority=authority,
            http_client=session,
            instance_discovery=False,
        )
    except ValueError as err:
        # MSAL reports a failed tenant discovery as ValueError; the provider's JSON
        # (with its AADSTS code) is in the message chain.
        text = f"{err} {err.__context__ or ''}"
        raise microsoft_error(
            "invalid_request", text if "AADSTS" in text else "AADSTS90002", step=step
        ) from err
    except requests.RequestException as err:
        raise http_failure(step, err, authority, session.timeout) from err
