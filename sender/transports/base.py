"""The transport interface: open once, send many messages, close.

Modelled on Django's SMTP backend (one connection reused across a batch) and
django-anymail's backends (the sending algorithm in a base class, each provider
filling in what differs). A transport takes a ``MailSettings`` (not the model),
so Test Mail can run on unsaved values.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType

from django.conf import settings
from django.core.mail import EmailMessage

from sender.transcript import Transcript
from settings_app.values import MailSettings


class Transport(ABC):
    """Base class of SmtpTransport, GraphTransport and GmailTransport."""

    def __init__(
        self,
        config: MailSettings,
        *,
        timeout: float | None = None,
        ca_file: str | None = None,
        transcript: Transcript | None = None,
    ) -> None:
        self.config = config
        self.timeout = timeout if timeout is not None else settings.MAILCONFIG_TIMEOUT
        self.ca_file = ca_file if ca_file is not None else settings.MAILCONFIG_CA_FILE
        self.transcript = transcript or Transcript.discard()

    @abstractmethod
    def open(self) -> None:
        """Connect (and authenticate) so that several sends share one connection."""

    @abstractmethod
    def send(self, message: EmailMessage) -> str:
        """Send one message; return the provider's id or reply. Raise ``MailError``."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection; never raises."""

    def __enter__(self) -> Transport:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
