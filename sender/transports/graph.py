"""Microsoft Graph (API mode): ``POST /v1.0/users/{From Address}/sendMail`` with the MIME body."""

from __future__ import annotations

import base64
from urllib.parse import quote

import requests

from sender.client_credentials import (
    AppCredential,
    MicrosoftClientCredentials,
    graph_token_provider,
)
from sender.errors import (
    AuthenticationError,
    AuthorizationError,
    ConfigurationError,
    MailError,
    MessageRefused,
    RateLimited,
    SenderRefused,
)
from sender.known_failures import SEND_AS_HINT, KnownFailure
from sender.tokens import AccessToken

from .http_api import HttpApiTransport, api_error, error_object

MAIL_SEND_HINT = (
    "Give the app the Microsoft Graph application permission Mail.Send and grant admin "
    "consent (App registrations > the app > API permissions). If an Application Access "
    "Policy limits the app to some mailboxes, include the From Address."
)

MAILBOX_NOT_IN_TENANT = "The From Address is not a mailbox in this tenant."
MAILBOX_HINT = "Use the address of a licensed mailbox (or shared mailbox) of the tenant."
TOO_LARGE = "The message is too large for Microsoft Graph."
TOO_LARGE_HINT = "Graph accepts about 4 MB per request: reduce the attachments."

# Graph's error codes (the JSON body's error.code) first, then HTTP statuses for
# answers whose code is not known.
GRAPH_FAILURES: tuple[KnownFailure, ...] = (
    KnownFailure(
        "ErrorAccessDenied",
        AuthorizationError,
        "Microsoft Graph denied sending as the From Address.",
        MAIL_SEND_HINT,
    ),
    KnownFailure(
        "InvalidAuthenticationToken",
        AuthenticationError,
        "Microsoft Graph rejected the access token.",
        "Check the Azure environment: the token must come from the same cloud as Graph.",
    ),
    KnownFailure("ErrorInvalidUser", ConfigurationError, MAILBOX_NOT_IN_TENANT, MAILBOX_HINT),
    KnownFailure("ResourceNotFound", ConfigurationError, MAILBOX_NOT_IN_TENANT, MAILBOX_HINT),
    KnownFailure(
        "MailboxNotEnabledForRESTAPI",
        ConfigurationError,
        "The From Address has no Exchange Online mailbox.",
        "Give the user an Exchange Online licence, or use another mailbox.",
    ),
    KnownFailure(
        "ErrorSendAsDenied", SenderRefused, "Graph refused the From header.", SEND_AS_HINT
    ),
    KnownFailure("ErrorMessageSizeExceeded", MessageRefused, TOO_LARGE, TOO_LARGE_HINT),
    KnownFailure(
        "ErrorExceededMessageLimit",
        RateLimited,
        "The mailbox reached Exchange Online's sending limit.",
        "Exchange allows 30 messages a minute and 10,000 recipients a day per mailbox.",
    ),
    KnownFailure(
        429,
        RateLimited,
        "Microsoft Graph is throttling requests for this mailbox.",
        "Sending resumes by itself; if it persists, the product sends too much at once.",
    ),
    KnownFailure(413, MessageRefused, TOO_LARGE, TOO_LARGE_HINT),
)


def graph_error(response: requests.Response) -> MailError:
    """The error a Graph response means, read from its ``{"error": {"code", "message"}}``."""
    code = error_object(response).get("code") or str(response.status_code)
    return api_error(
        response,
        GRAPH_FAILURES,
        code,
        response.status_code,
        code=code,
        api_name="Microsoft Graph",
    )


class GraphTransport(HttpApiTransport):
    """Sends as the From Address's mailbox with the app's client-credentials token."""

    api_name = "Microsoft Graph"

    @property
    def endpoint(self) -> str:
        graph = self.config.api_azure.graph_host.rstrip("/")
        return f"{graph}/v1.0/users/{quote(self.config.from_address, safe='@')}/sendMail"

    @property
    def identity_url(self) -> str:
        return self.config.api_azure.authority_host

    def token_provider(self) -> MicrosoftClientCredentials:
        return graph_token_provider(
            tenant=self.config.api_tenant_id,
            client_id=self.config.api_client_id,
            credential=AppCredential.chosen(
                self.config.api_credential_type,
                secret=self.config.api_client_secret,
                certificate=self.config.api_certificate,
            ),
            environment=self.config.api_azure,
            ca_file=self.ca_file,
            timeout=self.timeout,
        )

    def post(self, token: AccessToken, raw: bytes) -> requests.Response:
        # The MIME form sends headers, alternatives and attachments exactly as built.
        return self.session.post(
            self.endpoint,
            data=base64.b64encode(raw),
            headers={"Authorization": f"Bearer {token.token}", "Content-Type": "text/plain"},
        )

    def accepted(self, response: requests.Response) -> str | None:
        if response.status_code != 202:
            return None
        request_id = response.headers.get("request-id", "")
        return "202 Accepted" + (f" (request-id {request_id})" if request_id else "")

    def error_for(self, response: requests.Response) -> MailError:
        return graph_error(response)
