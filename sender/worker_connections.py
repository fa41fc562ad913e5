"""The transports a worker process keeps open between messages: one per connection.

A worker sends a batch over the transport (SMTP connection, API token) it already
holds, for the configuration it was opened with. The drain reads the saved
configuration once per batch and hands it in: a save (a new configuration object)
closes the old transport before the next batch, and so do an error and a pause
longer than ``IDLE_SECONDS``.
"""

from __future__ import annotations

import atexit
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sender.errors import ConfigurationError
from settings_app.models import Auth, Mode, Provider
from settings_app.values import MailSettings

from .factory import build_transport
from .stored import backup_settings, current_settings
from .transports.base import Transport
from .transports.http_api import HttpApiTransport

logger = logging.getLogger(__name__)

# A connection unused this long is closed before the next message rather than reused:
# servers drop idle clients (Postfix after 300 s, many after less), and a reply to a
# dead connection would cost the message a retry.
IDLE_SECONDS = 30.0


def transport_label(config: MailSettings) -> str:
    """How a message goes out, for the Email Log: "SMTP (Basic)", "Microsoft Graph"..."""
    if config.mode == Mode.API:
        return "Gmail API" if config.api_provider == Provider.GOOGLE else "Microsoft Graph"
    if config.auth == Auth.OAUTH:
        return "SMTP (XOAUTH2)"
    return "SMTP (Basic)" if config.username else "SMTP"


@dataclass
class _OpenTransport:
    transport: Transport
    config: MailSettings
    last_used: float


class WorkerConnections:
    """The one transport a worker process keeps open between messages, for one connection."""

    def __init__(self, load: Callable[[], MailSettings] = current_settings) -> None:
        self.load = load
        self.current: _OpenTransport | None = None
        self.label = ""

    def get(self, config: MailSettings | None = None) -> tuple[Transport, MailSettings]:
        """The open transport for ``config`` (read once per batch), or for the saved
        configuration; opened now if needed."""
        if config is None:
            config = self.load()  # raises ConfigurationError when nothing is saved
        self.label = transport_label(config)
        now = time.monotonic()
        current = self.current
        if current is not None and (
            current.config is not config or now - current.last_used > IDLE_SECONDS
        ):
            self.discard()
            current = None
        if current is None:
            transport = build_transport(config)
            if isinstance(transport, HttpApiTransport):
                # Never sleep on a Retry-After here: the retry is queued for later instead.
                transport.max_wait = 0
            transport.open()
            current = self.current = _OpenTransport(transport, config, now)
        current.last_used = now
        return current.transport, current.config

    def discard(self) -> None:
        """Close the open transport (after an error, a save, or when idle); never raises."""
        current, self.current = self.current, None
        if current is not None:
            try:
                current.transport.close()
            except Exception:  # close() should not raise; a worker must not die of it
                logger.exception("Closing the transport failed")


def saved_backup() -> MailSettings:
    """The backup connection in use; ConfigurationError when none is."""
    backup = backup_settings()
    if backup is None:
        raise ConfigurationError(
            "No backup connection is in use.",
            step="Load settings",
            hint="Save the Backup Connection with Use the backup connection when the primary "
            "fails ticked.",
        )
    return backup


primary = WorkerConnections(current_settings)
backup = WorkerConnections(saved_backup)
atexit.register(primary.discard)
atexit.register(backup.discard)
