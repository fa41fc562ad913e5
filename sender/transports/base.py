"""The transport interface: open once, send many messages, close.

Modelled on Django's SMTP backend (one connection reused across a batch) and
django-anymail's backends (the sending algorithm in a base class, each provider
filling in what differs). A transport takes a ``MailSettings`` (not the model),
so Test Mail can run on unsaved values.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType

from django.conf import settings
from django.core.mail import EmailMessage

from sender.errors import RefusedRecipient
from sender.transcript import Transcript
from settings_app.values import MailSettings


@dataclass(frozen=True)
class Accepted:
    """What ``Transport.send()`` returns: the server's reply or the API's status, and the
    recipients it refused while taking the message for the others (SMTP answers each RCPT
    on its own; smtplib's ``sendmail()`` returns them the same way)."""

    reply: str
    refused: tuple[RefusedRecipient, ...] = ()


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
    def send(self, message: EmailMessage) -> Accepted:
        """Send one message; return the provider's reply and any refused recipients.

        Raise ``MailError`` when the message went to nobody (its ``refused`` then names
        the recipients when they were all refused)."""

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
