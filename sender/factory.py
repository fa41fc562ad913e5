"""Pick the transport for a configuration: SMTP (none / Basic / XOAUTH2), Graph or Gmail API."""

from __future__ import annotations

from django.conf import settings

from sender.transcript import Transcript
from settings_app.sending_methods import TransportKind
from settings_app.values import MailSettings

from .tokens import TokenProvider, grant_tokens
from .transports.base import Transport


def build_transport(
    config: MailSettings, *, transcript: Transcript | None = None, timeout: float | None = None
) -> Transport:
    """The transport the configuration's sending method names, not yet opened."""
    method = config.method
    # Imported here: each transport pulls in its provider library only when used.
    if method.transport == TransportKind.GMAIL:
        from .transports.gmail import GmailTransport

        return GmailTransport(config, transcript=transcript, timeout=timeout)
    if method.transport == TransportKind.GRAPH:
        from .transports.graph import GraphTransport

        return GraphTransport(config, transcript=transcript, timeout=timeout)

    from .transports.smtp import SmtpTransport

    return SmtpTransport(
        config,
        token_provider=smtp_token_provider(config, timeout=timeout),
        transcript=transcript,
        timeout=timeout,
    )


def smtp_token_provider(
    config: MailSettings, *, timeout: float | None = None
) -> TokenProvider | None:
    """Where SMTP XOAUTH2 gets its tokens: the stored grant, the app itself, or nowhere."""
    method = config.method
    if method.uses_grant:
        return grant_tokens(config)
    if method.uses_app_token:
        from .client_credentials import AppCredential, exchange_smtp_token_provider

        return exchange_smtp_token_provider(
            tenant=config.oauth_tenant_id,
            client_id=config.oauth_client_id,
            credential=AppCredential.chosen(
                config.oauth_credential_type,
                secret=config.oauth_client_secret,
                certificate=config.oauth_certificate,
            ),
            environment=config.smtp_azure,
            ca_file=settings.MAILCONFIG_CA_FILE,
            timeout=timeout if timeout is not None else settings.MAILCONFIG_TIMEOUT,
        )
    return None
