"""Pick the transport for a configuration: SMTP (none / Basic / XOAUTH2), Graph or Gmail API."""

from __future__ import annotations

from sender.transcript import Transcript
from settings_app.models import Mode, Provider
from settings_app.values import MailSettings

from .tokens import grant_tokens
from .transports.base import Transport


def build_transport(
    config: MailSettings, *, transcript: Transcript | None = None, timeout: float | None = None
) -> Transport:
    """The transport the configuration asks for, not yet opened."""
    # Imported here: each transport pulls in its provider library only when used.
    if config.mode == Mode.API:
        if config.api_provider == Provider.GOOGLE:
            from .transports.gmail import GmailTransport

            return GmailTransport(config, transcript=transcript, timeout=timeout)
        from .transports.graph import GraphTransport

        return GraphTransport(config, transcript=transcript, timeout=timeout)

    from .transports.smtp import SmtpTransport

    token_provider = None
    if config.uses_smtp_oauth:
        token_provider = grant_tokens(config)
    return SmtpTransport(
        config, token_provider=token_provider, transcript=transcript, timeout=timeout
    )
