"""The stored SMTP OAuth grant: its status, storing it, and tokens from it for XOAUTH2.

Refresh tokens may rotate on every use. Refreshing happens under a row lock, and
a rotated refresh token is stored in the same transaction, so two processes
refreshing at once never lose the newest token: the second waits, then finds
the access token the first one stored and uses it.

Each process also keeps the access tokens it got in memory, keyed by the settings
and by the grant they came from: a grant replaced by another process (Reconnect as
another account, Disconnect and Authorize) is a new key, so its token is never
mistaken for the old grant's.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from sender.errors import AuthenticationError, ConfigurationError, MailError
from sender.identity_errors import GrantInvalid
from sender.tokens import AccessToken, describe_expiry, expires_soon
from sender.transcript import Transcript
from settings_app.models import Provider
from settings_app.values import MailSettings

from .consent import GoogleConsent, Tokens, consent_provider, grant_fingerprint
from .models import GrantStatus, OAuthGrant

STEP = "Obtain token"
RECONNECT_HINT = "Open the Mail Server page and press Reconnect to authorize again."

# (settings fingerprint, grant id, authorized at) -> the access token from that grant.
_memory: dict[tuple[str, int, str], AccessToken] = {}
_memory_lock = threading.Lock()


@dataclass(frozen=True)
class GrantState:
    """What the page says about the grant for the current settings."""

    status: str  # "missing", "changed", "active" or "expired"
    grant: OAuthGrant | None = None

    @property
    def usable(self) -> bool:
        return self.status == "active"

    @property
    def needs_authorization(self) -> bool:
        return self.status in ("missing", "changed")


def stored_grant() -> OAuthGrant | None:
    return OAuthGrant.objects.filter(pk=OAuthGrant.SINGLETON_ID).first()


def grant_state(config: MailSettings) -> GrantState:
    """The grant's status for these settings (a grant for other settings does not count)."""
    grant = stored_grant()
    if grant is None:
        return GrantState("missing")
    if (
        grant.provider != config.oauth_provider
        or grant.credentials_fingerprint != grant_fingerprint(config)
    ):
        return GrantState("changed", grant)
    if grant.status == GrantStatus.EXPIRED:
        return GrantState("expired", grant)
    return GrantState("active", grant)


def store_grant(config: MailSettings, tokens: Tokens, user: AbstractBaseUser) -> OAuthGrant:
    """Keep a new grant (replacing any older one) for the settings it was made for."""
    if not tokens.refresh_token:
        raise MailError(
            "The provider returned no refresh token, so mail could only be sent for an hour.",
            step="Redeem authorization code",
            hint="Authorize again; for Google the consent must ask for offline access.",
        )
    now = timezone.now()
    grant, _ = OAuthGrant.objects.update_or_create(
        pk=OAuthGrant.SINGLETON_ID,
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
    forget_cached_tokens()
    return grant


def delete_grant(config: MailSettings) -> OAuthGrant | None:
    """Remove the stored grant; a Google grant is also revoked at Google (best effort)."""
    grant = stored_grant()
    if grant is None:
        return None
    refresh_token = grant.refresh_token
    grant.delete()
    forget_cached_tokens()
    # Decided by the grant, not the settings: the provider may have changed since, and
    # Google's revocation needs only the token, not the client credentials.
    if grant.provider == Provider.GOOGLE:
        GoogleConsent(config).revoke(refresh_token)
    return grant


def forget_cached_tokens() -> None:
    with _memory_lock:
        _memory.clear()


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
            with _memory_lock:
                cached = _memory.get(self._memory_key(grant))
            if cached is not None and not force and not expires_soon(cached):
                step.details.append(
                    f"Reused the cached token of {cached.account}, {describe_expiry(cached)}"
                )
                return cached
            token, refreshed, details = self._refresh(force)
            step.details.extend(details)
            with _memory_lock:
                # Tokens of older grants are useless now: keep the memory to one entry.
                _memory.clear()
                _memory[self._memory_key(refreshed)] = token
            return token

    def _memory_key(self, grant: OAuthGrant) -> tuple[str, int, str]:
        # authorized_at changes with every consent, whichever process stored it.
        return (self.fingerprint, grant.pk, grant.authorized_at.isoformat())

    def _usable_grant(self) -> OAuthGrant:
        """The stored grant if it fits these settings (the one query a cached token costs)."""
        state = grant_state(self.config)
        if state.needs_authorization:
            raise ConfigurationError(
                "Authorization needed: no OAuth authorization exists for these settings."
                if state.status == "missing"
                else "Authorization needed: the OAuth settings changed since the authorization.",
                step=STEP,
                code="NO-GRANT",
                hint="Save the settings, then press Authorize on the Mail Server page.",
            )
        if state.status == "expired":
            assert state.grant is not None
            raise AuthenticationError(
                "Authorization expired - Reconnect.",
                step=STEP,
                code="invalid_grant",
                provider_text=state.grant.status_reason,
                hint=RECONNECT_HINT,
            )
        assert state.grant is not None
        return state.grant

    def _refresh(self, force: bool) -> tuple[AccessToken, OAuthGrant, list[str]]:
        expired: AuthenticationError | None = None
        with transaction.atomic():
            grant = (
                OAuthGrant.objects.select_for_update().filter(pk=OAuthGrant.SINGLETON_ID).first()
            )
            if grant is None or grant.credentials_fingerprint != self.fingerprint:
                raise ConfigurationError(
                    "Authorization needed: the authorization was removed.",
                    step=STEP,
                    code="NO-GRANT",
                    hint="Press Authorize on the Mail Server page.",
                )
            stored = _stored_access_token(grant)
            if stored is not None and not force and not expires_soon(stored):
                # Still valid: issued with the authorization, or refreshed by another
                # process (perhaps while we waited for the lock).
                return (
                    stored,
                    grant,
                    [
                        f"Used the stored access token of {grant.account or 'the account'}, "
                        f"{describe_expiry(stored)}"
                    ],
                )
            try:
                tokens = consent_provider(self.config).refresh(grant.refresh_token)
            except GrantInvalid as err:
                grant.status = GrantStatus.EXPIRED
                grant.status_reason = err.provider_text or err.message
                grant.save(update_fields=["status", "status_reason"])
                # Raised after the transaction, so the expired status is committed.
                expired = AuthenticationError(
                    "Authorization expired - Reconnect.",
                    step=STEP,
                    code=err.code,
                    provider_text=err.provider_text,
                    hint=f"{_why_invalid(grant, err.message)} {RECONNECT_HINT}",
                )
            else:
                rotated = bool(tokens.refresh_token) and tokens.refresh_token != grant.refresh_token
                if rotated:
                    grant.refresh_token = tokens.refresh_token
                grant.access_token = tokens.access_token
                grant.access_token_expires_at = tokens.expires_at
                grant.refreshed_at = timezone.now()
                grant.save()
        if expired is not None:
            raise expired
        token = AccessToken(tokens.access_token, tokens.expires_at, account=grant.account)
        details = [
            f"Refreshed with the stored authorization of {grant.account or 'the account'}, "
            f"{describe_expiry(token)}",
        ]
        if rotated:
            details.append("The provider rotated the refresh token; the new one is stored.")
        return token, grant, details


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
