"""The stored SMTP OAuth grant and the pending authorization requests (``state``)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from settings_app.fields import EncryptedTextField
from settings_app.models import Connection, Provider


class GrantStatus(models.TextChoices):
    """Where the SMTP OAuth grant stands for the current settings.

    A stored grant is ACTIVE or EXPIRED (``STORED_GRANT_STATUSES``); MISSING and CHANGED
    say why no stored grant applies: there is none, or it was made for other settings.
    """

    ACTIVE = "active", "Authorized"
    EXPIRED = "expired", "Authorization expired"
    MISSING = "missing", "Not authorized"
    CHANGED = "changed", "Settings changed since the authorization"


STORED_GRANT_STATUSES = [
    (status.value, status.label) for status in (GrantStatus.ACTIVE, GrantStatus.EXPIRED)
]


class OAuthGrant(models.Model):
    """The refresh token the consent flow obtained for SMTP XOAUTH2 (one per connection, like the settings).

    ``credentials_fingerprint`` is a hash of the settings the grant was made for
    (provider, tenant, client ID and secret, Azure environment, username): when
    they change, the grant no longer applies and the page asks for authorization.
    The hash covers the client secret, so in clear it would let anyone with a copy of
    the database test guesses of a weak secret offline: it is stored encrypted like the
    secret itself, and compared after decryption. Encryption, not an HMAC keyed by the
    encryption key, because ``rotate_encryption_key`` re-encrypts it with every other
    secret, so a grant stays valid across a key rotation without recomputing anything.
    """

    # One grant per connection: the backup's consent never touches the primary's grant.
    connection = models.CharField(
        max_length=10, choices=Connection.choices, default=Connection.PRIMARY, unique=True
    )
    provider = models.CharField(max_length=16, choices=Provider.choices)
    account = models.CharField(max_length=320, blank=True)
    refresh_token = EncryptedTextField()
    # The current access token, encrypted, so a process that waited for the row
    # lock uses the token another process just got instead of refreshing again.
    access_token = EncryptedTextField(blank=True)
    access_token_expires_at = models.DateTimeField(null=True, blank=True)
    scopes = models.CharField(max_length=512, blank=True)
    credentials_fingerprint = EncryptedTextField()
    authorized_at = models.DateTimeField(default=timezone.now)
    authorized_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    refreshed_at = models.DateTimeField(null=True, blank=True)
    # When the provider said the refresh token itself stops working, whatever its use:
    # Google answers refresh_token_expires_in for a project whose consent screen is in
    # "Testing" (7 days). None when the provider gave no such limit.
    refresh_token_expires_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=STORED_GRANT_STATUSES, default=GrantStatus.ACTIVE
    )
    status_reason = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.get_provider_display()} grant for {self.account or 'unknown account'}"


class AuthorizationRequest(models.Model):
    """One started consent: the server-side half of ``state``, single use, short-lived.

    Only a hash of ``state`` is stored. It is bound to the user who started it and to
    their browser (a hash of a random cookie, which survives a login in between).
    """

    state_hash = models.CharField(max_length=64, unique=True)
    browser_hash = models.CharField(max_length=64)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    provider = models.CharField(max_length=16, choices=Provider.choices)
    # The connection (primary or backup) whose settings the consent is for.
    connection = models.CharField(
        max_length=10, choices=Connection.choices, default=Connection.PRIMARY
    )
    config_version = models.PositiveIntegerField()
    redirect_uri = models.CharField(max_length=2000)
    # The PKCE verifier (and for Microsoft MSAL's whole flow): encrypted like any secret.
    flow = EncryptedTextField()
    created_at = models.DateTimeField(default=timezone.now)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.get_provider_display()} authorization by user {self.user_id}"
