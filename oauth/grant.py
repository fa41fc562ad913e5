"""The stored SMTP OAuth grant: its status, storing it, and tokens from it for XOAUTH2.

Refresh tokens may rotate on every use. Refreshing happens under a row lock, and
a rotated refresh token is stored in the same transaction, so two processes
refreshing at once never lose the newest token: the second waits, then finds
the access token the first one stored and uses it.

The grant row is also the only cache of the access token: every send reads the row
anyway (to check the grant still fits the settings), and uses its access token
while it is good. A grant replaced by another process (Reconnect as another account,
Disconnect and Authorize) is read the same way, so an old grant's token is never used.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from sender.errors import GrantInvalid, GrantMissing, MailError
from sender.metrics_counters import REFRESH_TOKEN, token_request
from sender.tokens import AccessToken, describe_expiry, expires_soon
from sender.transcript import Transcript
from settings_app.models import CONNECTION_PAGE_TITLES, Connection, Provider
from settings_app.values import MailSettings

from .consent import GoogleConsent, Tokens, consent_provider, grant_fingerprint
from .models import GrantStatus, OAuthGrant

STEP = "Obtain token"


def _page(connection: str) -> str:
    """The page that holds the connection's OAuth panel, as a hint names it."""
    return f"{CONNECTION_PAGE_TITLES[Connection(connection)]} page"


def reconnect_hint(connection: str) -> str:
    """What to do about an expired grant, naming the page of its connection."""
    return f"Open the {_page(connection)} and press Reconnect to authorize again."


@dataclass(frozen=True)
class GrantState:
    """What the page says about the grant for the current settings."""

    status: GrantStatus
    grant: OAuthGrant | None = None

    @property
    def usable(self) -> bool:
        return self.status == GrantStatus.ACTIVE

    @property
    def needs_authorization(self) -> bool:
        return self.status in (GrantStatus.MISSING, GrantStatus.CHANGED)


def stored_grant(connection: str = Connection.PRIMARY) -> OAuthGrant | None:
    """The connection's stored grant, if any."""
    return OAuthGrant.objects.filter(connection=connection).first()


def grant_state(config: MailSettings) -> GrantState:
    """The grant's status for these settings (a grant for other settings, or for the other
    connection, does not count)."""
    grant = stored_grant(config.connection)
    if grant is None:
        return GrantState(GrantStatus.MISSING)
    if (
        grant.provider != config.oauth_provider
        or grant.credentials_fingerprint != grant_fingerprint(config)
    ):
        return GrantState(GrantStatus.CHANGED, grant)
    return GrantState(GrantStatus(grant.status), grant)


def store_grant(config: MailSettings, tokens: Tokens, user: User) -> OAuthGrant:
    """Keep a new grant (replacing any older one) for the settings it was made for."""
    if not tokens.refresh_token:
        raise MailError(
            "The provider returned no refresh token, so mail could only be sent for an hour.",
            step="Redeem authorization code",
            hint="Authorize again; for Google the consent must ask for offline access.",
        )
    now = timezone.now()
    grant, _ = OAuthGrant.objects.update_or_create(
        connection=config.connection,
        defaults={
            "provider": config.oauth_provider,
            "account": tokens.account,
            "refresh_token": tokens.refresh_token,
            "access_token": tokens.access_token,
            "access_token_expires_at": tokens.expires_at,
            "scopes": tokens.scopes[:512],
            "credentials_fingerprint": grant_fingerprint(config),
            "authorized_at": now,
            "authorized_by": user,
            "refreshed_at": now,
            "refresh_token_expires_at": tokens.refresh_token_expires_at,
            "status": GrantStatus.ACTIVE,
            "status_reason": "",
        },
    )
    return grant


def delete_grant(config: MailSettings) -> OAuthGrant | None:
    """Remove the connection's stored grant; a Google grant is also revoked at Google
    (best effort)."""
    grant = stored_grant(config.connection)
    if grant is None:
        return None
    refresh_token = grant.refresh_token
    grant.delete()
    # Decided by the grant, not the settings: the provider may have changed since, and
    # Google's revocation needs only the token, not the client credentials.
    if grant.provider == Provider.GOOGLE:
        GoogleConsent(config).revoke(refresh_token)
    return grant


class StoredGrantTokenProvider:
    """Access tokens for SMTP XOAUTH2 from the stored refresh token (the ``TokenProvider``)."""

    def __init__(self, config: MailSettings) -> None:
        self.config = config
        self.fingerprint = grant_fingerprint(config) if config.uses_smtp_oauth else ""

    def get_token(
        self, transcript: Transcript | None = None, *, force: bool = False
    ) -> AccessToken:
        transcript = transcript or Transcript.discard()
        with transcript.step(STEP) as step:
            grant = self._usable_grant()
            stored = _stored_access_token(grant)
            if stored is not None and not force and not expires_soon(stored):
                step.details.append(_used_stored(grant, stored))
                return stored
            token, details = self._refresh(force)
            step.details.extend(details)
            return token

    def _usable_grant(self) -> OAuthGrant:
        """The stored grant if it fits these settings (the one query a stored token costs)."""
        state = grant_state(self.config)
        if state.needs_authorization:
            raise GrantMissing(
                "Authorization needed: no OAuth authorization exists for these settings."
                if state.status == GrantStatus.MISSING
                else "Authorization needed: the OAuth settings changed since the authorization.",
                step=STEP,
                code="NO-GRANT",
                hint="Save the settings, then press Authorize on the "
                f"{_page(self.config.connection)}.",
            )
        assert state.grant is not None
        if state.status == GrantStatus.EXPIRED:
            raise authorization_expired(
                state.grant.status_reason,
                code="invalid_grant",
                hint=reconnect_hint(self.config.connection),
            )
        return state.grant

    def _refresh(self, force: bool) -> tuple[AccessToken, list[str]]:
        failure: MailError | None = None
        with transaction.atomic():
            grant = (
                OAuthGrant.objects.select_for_update()
                .filter(connection=self.config.connection)
                .first()
            )
            if grant is None or grant.credentials_fingerprint != self.fingerprint:
                raise GrantMissing(
                    "Authorization needed: the authorization was removed.",
                    step=STEP,
                    code="NO-GRANT",
                    hint=f"Press Authorize on the {_page(self.config.connection)}.",
                )
            stored = _stored_access_token(grant)
            if stored is not None and not force and not expires_soon(stored):
                # Still valid: issued with the authorization, or refreshed by another
                # process (perhaps while we waited for the lock).
                return stored, [_used_stored(grant, stored)]
            try:
                with token_request(grant.provider, REFRESH_TOKEN):
                    tokens = consent_provider(self.config).refresh(grant.refresh_token)
            except GrantInvalid as err:
                grant.status = GrantStatus.EXPIRED
                grant.status_reason = err.provider_text or err.message
                grant.save(update_fields=["status", "status_reason"])
                # Raised after the transaction, so the expired status is committed.
                failure = authorization_expired(
                    err.provider_text,
                    code=err.code,
                    hint=f"{_why_invalid(grant, err.message)} {reconnect_hint(self.config.connection)}",
                )
            except MailError as err:
                failure = err  # raised after the transaction, so the request's count is kept
            else:
                rotated = bool(tokens.refresh_token) and tokens.refresh_token != grant.refresh_token
                if rotated:
                    grant.refresh_token = tokens.refresh_token
                grant.access_token = tokens.access_token
                grant.access_token_expires_at = tokens.expires_at
                grant.refreshed_at = timezone.now()
                grant.save()
        if failure is not None:
            raise failure
        token = AccessToken(tokens.access_token, tokens.expires_at, account=grant.account)
        details = [
            f"Refreshed with the stored authorization of {grant.account or 'the account'}, "
            f"{describe_expiry(token)}",
        ]
        if rotated:
            details.append("The provider rotated the refresh token; the new one is stored.")
        return token, details


def authorization_expired(provider_text: str, *, code: str, hint: str) -> GrantInvalid:
    """The error for a grant the provider no longer honours: the admin must Reconnect."""
    return GrantInvalid(
        "Authorization expired - Reconnect.",
        step=STEP,
        code=code,
        provider_text=provider_text,
        hint=hint,
    )


def _used_stored(grant: OAuthGrant, token: AccessToken) -> str:
    return f"Used the stored access token of {grant.account or 'the account'}, {describe_expiry(token)}"


def _why_invalid(grant: OAuthGrant, message: str) -> str:
    """The provider's reason, or the known one: a Google "Testing" grant past its 7 days."""
    ends = grant.refresh_token_expires_at
    if grant.provider == Provider.GOOGLE and ends is not None and ends <= timezone.now():
        return (
            f"Google ended this authorization on {timezone.localtime(ends):%Y-%m-%d %H:%M}, 7 "
            "days after consent, because the Google Cloud project's OAuth consent screen is in "
            "Testing. Publish the app (Google Auth Platform > Audience > Publish app) so "
            "authorizations last."
        )
    return message


def _stored_access_token(grant: OAuthGrant) -> AccessToken | None:
    if not grant.access_token:
        return None
    return AccessToken(grant.access_token, grant.access_token_expires_at, account=grant.account)
