"""The values a sender needs, taken from the stored record or from an unsaved form.

Transports and token providers take a ``MailSettings`` rather than the model, so
Test Mail can run on what is on the form before anything is saved.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings

from .models import (
    SECRET_FIELDS,
    Auth,
    Connection,
    CredentialType,
    MailServerConfig,
    Mode,
    Provider,
    SignIn,
)
from .sending_methods import SendingMethod, method_for

PEM_CERTIFICATE_START = "-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class AzureEnvironment:
    """One Azure cloud: the hosts and scope that change together."""

    key: str
    label: str
    authority_host: str
    graph_host: str
    smtp_host: str
    smtp_scope: str
    # App-only SMTP (client credentials): "https://outlook.office365.com/.default".
    smtp_app_scope: str = ""

    def __post_init__(self) -> None:
        if not self.smtp_app_scope:
            # A row written before app-only SMTP existed: Exchange's resource is the
            # delegated scope's origin (https://outlook.office.com/SMTP.Send -> .../.default).
            origin = self.smtp_scope.rsplit("/", 1)[0] if "://" in self.smtp_scope else ""
            object.__setattr__(self, "smtp_app_scope", f"{origin}/.default" if origin else "")


def azure_environments() -> dict[str, AzureEnvironment]:
    """The configured Azure clouds (``MAILCONFIG_AZURE_ENVIRONMENTS``), in order."""
    return {
        key: AzureEnvironment(key=key, **row)
        for key, row in settings.MAILCONFIG_AZURE_ENVIRONMENTS.items()
    }


def azure_environment(key: str) -> AzureEnvironment:
    """The named Azure cloud, or the default one when the name is unknown."""
    envs = azure_environments()
    return envs.get(key) or envs[settings.MAILCONFIG_DEFAULT_AZURE_ENVIRONMENT]


@dataclass(frozen=True, repr=False)
class MailSettings:
    """An immutable snapshot of one mail server configuration (secrets in clear, in memory)."""

    mode: str = Mode.SMTP
    server_name: str = ""
    port: int | None = None
    security: str = "tls"
    auth: str = Auth.BASIC
    username: str = ""
    password: str = ""
    oauth_provider: str = Provider.MICROSOFT
    oauth_tenant_id: str = ""
    oauth_client_id: str = ""
    oauth_client_secret: str = ""
    oauth_azure_environment: str = "azure"
    oauth_sign_in: str = SignIn.DELEGATED
    oauth_credential_type: str = CredentialType.SECRET
    oauth_certificate: str = ""
    google_client_id: str = ""
    google_client_secret: str = ""
    from_address: str = ""
    admin_address: str = ""
    api_provider: str = Provider.MICROSOFT
    api_tenant_id: str = ""
    api_client_id: str = ""
    api_credential_type: str = CredentialType.SECRET
    api_client_secret: str = ""
    api_certificate: str = ""
    api_azure_environment: str = "azure"
    service_account_key: str = ""
    version: int = 0
    # Which stored configuration these values are (or a form would be saved to): the
    # OAuth grant and the sender's caches are per connection.
    connection: str = Connection.PRIMARY

    @classmethod
    def from_model(cls, config: MailServerConfig) -> MailSettings:
        names = cls.__dataclass_fields__.keys()
        return cls(**{name: getattr(config, name) for name in names})

    def __repr__(self) -> str:
        # Secrets never reach logs or error reports through a repr.
        shown = (
            f"{name}={getattr(self, name)!r}"
            for name in self.__dataclass_fields__
            if name not in SECRET_FIELDS
        )
        return f"MailSettings({', '.join(shown)})"

    # What a transport needs to know, derived in one place.
    @property
    def method(self) -> SendingMethod:
        """The sending method the configuration's choices select."""
        return method_for(lambda name: getattr(self, name))

    @property
    def uses_smtp_oauth(self) -> bool:
        """SMTP XOAUTH2 with the stored grant (an account signed in and consented)."""
        return self.method.uses_grant

    @property
    def uses_xoauth2(self) -> bool:
        """SMTP signs in with XOAUTH2: from the stored grant or an app-only token."""
        return self.method.uses_grant or self.method.uses_app_token

    @property
    def smtp_azure(self) -> AzureEnvironment:
        return azure_environment(self.oauth_azure_environment)

    @property
    def api_azure(self) -> AzureEnvironment:
        return azure_environment(self.api_azure_environment)

    @property
    def service_account_info(self) -> dict[str, Any]:
        return json.loads(self.service_account_key) if self.service_account_key else {}

    @property
    def secret_values(self) -> list[str]:
        """Every secret this configuration holds, as a server might echo it back: each
        stored secret, and the private key inside a stored key or certificate (a part of
        the stored text, which a plain search for the whole would miss)."""
        values = [getattr(self, name) for name in SECRET_FIELDS]
        # The service account key's PEM (a key that is not JSON is hidden whole above).
        with contextlib.suppress(ValueError, AttributeError):
            values.append(self.service_account_info.get("private_key", ""))
        # A stored certificate is its private key, then the certificate.
        values += [
            value.split(PEM_CERTIFICATE_START)[0].strip()
            for value in values
            if isinstance(value, str) and PEM_CERTIFICATE_START in value
        ]
        return [value for value in values if isinstance(value, str) and value]

    def fingerprint(self, names: tuple[str, ...]) -> str:
        """A hash of the named fields, to notice when credentials change (secrets hashed too).

        Plain SHA-256, so whoever holds it can test guesses of the secrets it covers:
        keep it in memory, or store it encrypted (``OAuthGrant.credentials_fingerprint``
        is an ``EncryptedTextField``, which survives ``rotate_encryption_key``).
        """
        data = asdict(self)
        payload = json.dumps([data[name] for name in names], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()
