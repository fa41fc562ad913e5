"""Exchange Online-like SMTP servers: aiosmtpd answering as Microsoft 365 does.

- ``exchange_app_only_smtp``: STARTTLS with XOAUTH2 that accepts only app-only tokens:
  a token the Microsoft fake issued for client credentials with Exchange's scope
  (``https://outlook.office365.com/.default``), carrying the ``SMTP.SendAsApp`` role,
  for a mailbox the app was given (``Add-MailboxPermission``). Anything else gets
  the 334 JSON challenge and ``535 5.7.3 Authentication unsuccessful``, as Exchange.
- ``microsoft_365_smtp``: a submission server whose login Microsoft 365 refuses with
  ``535 5.7.139 ... SmtpClientAuthentication is disabled for the Tenant``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.fakes.microsoft import MicrosoftFake

from .smtp_server import TEST_USERS, SmtpTestServer

EXCHANGE_APP_SCOPE = "https://outlook.office365.com/.default"
SMTP_AUTH_DISABLED_FOR_TENANT = (
    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
    "Tenant. Visit https://aka.ms/smtp_auth_disabled for more information."
)


class ExchangeAppOnlyServer(SmtpTestServer):
    """An SMTP server that signs in apps, not users: checks the token against the fake."""

    def __init__(self, microsoft: MicrosoftFake, *, scope: str = EXCHANGE_APP_SCOPE, **kw) -> None:
        self.microsoft = microsoft
        self.scope = scope
        # Mailbox -> app IDs with FullAccess on it (Add-MailboxPermission).
        self.mailbox_permissions: dict[str, set[str]] = {}
        self.refused: list[str] = []
        super().__init__(security="starttls", token_checker=self._accepts, **kw)

    def grant_mailbox(self, mailbox: str, app_id: str) -> None:
        self.mailbox_permissions.setdefault(mailbox.lower(), set()).add(app_id)

    def _accepts(self, user: str, token: str) -> bool:
        issued = self.microsoft.app_only_token(token, self.scope)
        if issued is None:
            self.refused.append(f"{user}: not an app-only token for {self.scope}")
            return False
        if "SMTP.SendAsApp" not in issued.roles:
            self.refused.append(f"{user}: no SMTP.SendAsApp role")
            return False
        app_id = _app_id(token)
        if app_id not in self.mailbox_permissions.get(user.lower(), set()):
            self.refused.append(f"{user}: app {app_id} has no permission on the mailbox")
            return False
        return True


def _app_id(token: str) -> str:
    from sender.tokens import jwt_claims

    return str(jwt_claims(token).get("appid", ""))


@pytest.fixture
def exchange_app_only_smtp(
    tls_ca, microsoft_fake: MicrosoftFake
) -> Iterator[Callable[..., ExchangeAppOnlyServer]]:
    """Start Exchange-like app-only XOAUTH2 servers (stopped after the test)."""
    started: list[ExchangeAppOnlyServer] = []

    def start(**kwargs) -> ExchangeAppOnlyServer:
        server = ExchangeAppOnlyServer(microsoft_fake, ca=tls_ca, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def microsoft_365_smtp(smtp_server_factory) -> SmtpTestServer:
    """A Microsoft 365-like submission server with SMTP AUTH disabled for the tenant."""
    server = smtp_server_factory(security="starttls", users=TEST_USERS)
    server.injections.auth_reply = SMTP_AUTH_DISABLED_FOR_TENANT
    return server
