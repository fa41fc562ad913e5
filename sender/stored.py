"""The stored configuration as the sender sees it: cached, reloaded when a save bumps the version."""

from __future__ import annotations

import threading

from django.urls import reverse

from sender.errors import ConfigurationError
from settings_app.models import MailServerConfig
from settings_app.values import MailSettings

_lock = threading.Lock()
_cached: MailSettings | None = None
_cached_stamp: tuple[int, object] | None = None


def current_settings() -> MailSettings:
    """The saved configuration; raises ConfigurationError when nothing has been saved yet."""
    global _cached, _cached_stamp
    # One cheap query per batch tells whether another process saved since we decrypted.
    stamp = (
        MailServerConfig.objects.filter(pk=MailServerConfig.SINGLETON_ID)
        .values_list("version", "updated_at")
        .first()
    )
    if not stamp or not stamp[0]:
        raise ConfigurationError(
            "Mail cannot be sent: no mail server is configured.",
            step="Load settings",
            hint=f"An administrator must save the settings at {reverse('settings_app:mail_server')}.",
        )
    with _lock:
        if _cached is None or _cached_stamp != stamp:
            _cached = MailSettings.from_model(MailServerConfig.load())
            _cached_stamp = stamp
        return _cached


def backup_settings() -> MailSettings | None:
    """The saved backup connection when "use it when the primary fails" is on, else None.

    The interface the failover, the alerts and the health checks share; the Backup
    Connection page fills it in (until then there is no backup).
    """
    return None
