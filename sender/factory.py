"""Pick the transport for a configuration: SMTP (none / Basic / XOAUTH2), Graph or Gmail API."""

from __future__ import annotations

from sender.transcript import Transcript
from settings_app.sending_methods import TransportKind
from settings_app.values import MailSettings

from .tokens import grant_tokens
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

    token_provider = grant_tokens(config) if method.uses_grant else None
    return SmtpTransport(
        config, token_provider=token_provider, transcript=transcript, timeout=timeout
    )
