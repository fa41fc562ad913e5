"""The consent flow from the console's side: start it, and complete it on the callback."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpResponse, HttpResponseRedirect

from mailconfig.client_address import client_ip
from mailconfig.signed_in import SignedInRequest
from sender import pauses
from sender.errors import MailError
from sender.metrics_counters import AUTHORIZATION_CODE, token_request
from settings_app.models import AuditEntry, Connection, MailServerConfig, Provider
from settings_app.values import MailSettings

from .consent import Tokens, consent_provider
from .grant import store_grant
from .models import AuthorizationRequest, OAuthGrant
from .redirect_uri import redirect_uri
from .state import (
    browser_token,
    consume_state,
    create_state,
    flow_of,
    save_flow,
    set_browser_cookie,
)


class SettingsChanged(Exception):
    """The settings were saved again between the start of consent and its callback."""


class ConsentFailed(Exception):
    """The provider refused, or the code could not be redeemed, for one connection's consent."""

    def __init__(self, error: MailError, connection: str) -> None:
        super().__init__(error.message)
        self.error = error
        self.connection = connection


@dataclass(frozen=True)
class Completed:
    """A stored grant and what the admin should be warned about."""

    grant: OAuthGrant
    warnings: list[str]

    @property
    def connection(self) -> str:
        """The connection (primary or backup) the grant was stored for."""
        return self.grant.connection


def begin(request: SignedInRequest, config: MailSettings) -> HttpResponse:
    """Redirect to the provider's consent page; raises ``MailError`` if it cannot start."""
    browser = browser_token(request)
    state, record = create_state(
        user=request.user,
        browser=browser,
        provider=config.oauth_provider,
        connection=config.connection,
        config_version=config.version,
        redirect_uri=redirect_uri(request),
    )
    url, flow = consent_provider(config).start(record.redirect_uri, state)
    save_flow(record, flow)
    response = HttpResponseRedirect(url)
    set_browser_cookie(request, response, browser)
    return response


def complete(request: SignedInRequest) -> Completed:
    """Check the callback and store the grant.

    Raises ``StateRefused`` (forged, replayed, expired, someone else's),
    ``SettingsChanged``, or ``ConsentFailed`` (the provider's error, or the code
    redemption's, with the connection the consent was for).
    """
    record = consume_state(request, request.GET.get("state", ""))
    try:
        return _complete(request, record)
    except MailError as err:
        raise ConsentFailed(err, record.connection) from err


def _complete(request: SignedInRequest, record: AuthorizationRequest) -> Completed:
    # The state says which connection the consent is for; its settings are the ones checked.
    config = MailSettings.from_model(MailServerConfig.load(record.connection))
    error = request.GET.get("error")
    if error:
        # In the words of the provider the admin was sent to (kept with the state), even
        # if the settings changed since: nothing is stored either way, and what that
        # provider refused is the news the admin needs.
        raise consent_provider(config, record.provider).callback_error(
            error, request.GET.get("error_description", ""), record.redirect_uri
        )
    if config.version != record.config_version or config.oauth_provider != record.provider:
        raise SettingsChanged
    with token_request(config.oauth_provider, AUTHORIZATION_CODE):
        tokens = consent_provider(config).redeem(flow_of(record), request.GET.dict())
    with transaction.atomic():
        # Under the settings' lock, so a save cannot slip in between check and store.
        locked = MailServerConfig.objects.select_for_update().get(
            pk=MailServerConfig.ROW_IDS[Connection(record.connection)]
        )
        if locked.version != record.config_version:
            raise SettingsChanged
        grant = store_grant(config, tokens, request.user)
        _audit(request.user, config, tokens, client_ip(request))
        # Authorizing again is the change a refused grant waits for: its messages go again.
        pauses.resume(config.connection, "it was authorized again")
    return Completed(grant, account_warnings(config, tokens.account))


def account_warnings(config: MailSettings, account: str) -> list[str]:
    """Mismatches between who authorized and whom the settings name."""
    if not account:
        return []
    if config.oauth_provider == Provider.MICROSOFT:
        if config.username and account.lower() != config.username.lower():
            return [
                f"The authorization was made by {account}, but the Username is "
                f"{config.username}. Mail will be sent as {account}, and signing in as "
                f"{config.username} will fail: set the Username to {account}, or Reconnect "
                f"signed in as {config.username}."
            ]
    elif config.from_address and account.lower() != config.from_address.lower():
        return [
            f"The authorization was made by {account}, but the From Address is "
            f"{config.from_address}. Google only sends from the account or one of its "
            "verified aliases (Gmail > Settings > Accounts > Send mail as)."
        ]
    return []


def _audit(user: User, config: MailSettings, tokens: Tokens, ip: str | None) -> None:
    AuditEntry.objects.create(
        user=user,
        username=user.get_username(),
        source_ip=ip,
        version=config.version,
        action=f"Authorized OAuth ({config.oauth_provider.title()})",
        connection=config.connection,
        changed_fields=[f"Authorized as {tokens.account or 'unknown account'}"],
    )
