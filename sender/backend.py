"""The Django email backend: every ``send_mail()`` goes through the stored configuration.

With ``MAILCONFIG_DELIVERY = "queued"`` (the default) it stores each message in the
outbox and queues one task for it, in the caller's transaction, and returns at
once; a worker sends it (``sender/delivery.py``). With ``"immediate"`` (or
``EmailBackend(immediate=True)``) it sends within the call, shaped like Django's
SMTP backend: one transport (connection, token) per batch, ``fail_silently``,
``open()``/``close()`` usable as a context manager so callers can reuse one
connection across several ``send_messages()`` calls.

Opening the transport and then each message are each limited to
``MAILCONFIG_SEND_TIMEOUT`` seconds in total, every step and every read included:
a server that answers slowly, or a little at a time, cannot hold a sender forever.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.db import DatabaseError, transaction

from sender.errors import MailError
from settings_app.values import MailSettings

from . import outbox
from .deadline import MESSAGE, time_limit
from .factory import build_transport
from .stored import current_settings
from .transports.base import Transport

logger = logging.getLogger(__name__)


class EmailBackend(BaseEmailBackend):
    """Sends through SMTP, Microsoft Graph or the Gmail API, as the admin configured."""

    def __init__(
        self,
        fail_silently: bool = False,
        config: MailSettings | None = None,
        send_timeout: float | None = None,
        immediate: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(fail_silently=fail_silently, **kwargs)
        self.config_override = config  # Test Mail passes unsaved values
        self.send_timeout = send_timeout
        if immediate is None:
            immediate = config is not None or settings.MAILCONFIG_DELIVERY == "immediate"
        self.immediate = immediate
        self.transport: Transport | None = None
        self.config: MailSettings | None = None
        self._lock = threading.RLock()

    def open(self) -> bool:
        """Open the transport; return True if this call opened it (Django's convention)."""
        if self.transport is not None or not self.immediate:
            return False  # queued: the worker holds the connection
        try:
            self.config = self.config_override or current_settings()
            transport = build_transport(self.config)
            with time_limit(self._send_timeout(), MESSAGE):
                transport.open()
        except MailError:
            if not self.fail_silently:
                raise
            return False
        self.transport = transport
        return True

    def close(self) -> None:
        if self.transport is None:
            return
        try:
            self.transport.close()
        finally:
            self.transport = None

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        if not email_messages:
            return 0
        if not self.immediate:
            try:
                return self._queue(email_messages)
            except DatabaseError as fault:
                # An error mail about a read-only or locked database cannot be queued
                # either; mail_admins() and logging ask for silence, and get it.
                if not self.fail_silently:
                    raise
                logger.warning("%d message(s) could not be queued: %s", len(email_messages), fault)
                return 0
        with self._lock:
            opened_here = self.open()
            if self.transport is None or self.config is None:
                return 0  # failed silently
            sent = 0
            try:
                for message in email_messages:
                    if not message.recipients():
                        continue
                    self._fill_sender(message, self.config)
                    try:
                        with time_limit(self._send_timeout(), MESSAGE):
                            self.transport.send(message)
                    except MailError:
                        if not self.fail_silently:
                            raise
                    else:
                        sent += 1
            finally:
                if opened_here:
                    self.close()
            return sent

    def _send_timeout(self) -> float:
        # Read at each use, like the configuration: settings may change between batches.
        if self.send_timeout is not None:
            return self.send_timeout
        return settings.MAILCONFIG_SEND_TIMEOUT

    @staticmethod
    def _queue(email_messages: Sequence[EmailMessage]) -> int:
        # One transaction for the batch: all of it is queued, or (on error) none of it.
        with transaction.atomic():
            queued = [outbox.enqueue(m) for m in email_messages if m.recipients()]
        return len(queued)

    @staticmethod
    def _fill_sender(message: EmailMessage, config: MailSettings) -> None:
        # DEFAULT_FROM_EMAIL and SERVER_EMAIL are empty: a message without a sender
        # gets the configured From Address.
        if not message.from_email:
            message.from_email = config.from_address
