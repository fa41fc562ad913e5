"""Storing and posting the backup connection in tests."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from settings_app.models import Connection, MailServerConfig
from tests.factories import PAGE_URL, smtp_basic_post

BACKUP_URL = PAGE_URL + "backup/"
BACKUP_TEST_URL = BACKUP_URL + "test-mail/"
BACKUP_USER = "backup@example.net"
BACKUP_PASSWORD = "backup-s3cret"
# The account the backup's local test server accepts (not the primary's).
BACKUP_ACCOUNT = {
    "server_name": "localhost",
    "username": BACKUP_USER,
    "password": BACKUP_PASSWORD,
    "from_address": BACKUP_USER,
    "admin_address": "oncall@example.net",
}


def store_backup(server: Any = None, *, use: bool = True, **values: Any) -> MailServerConfig:
    """Save the backup connection the way its page does (a new version, a new timestamp);
    by default SMTP Basic over STARTTLS against ``server``, in use for failover."""
    MailServerConfig.ensure_row(Connection.BACKUP)
    config = MailServerConfig.load(Connection.BACKUP)
    if server is not None:
        values = {
            "mode": "smtp",
            "port": server.port,
            "security": "tls",
            "auth": "basic",
            **BACKUP_ACCOUNT,
            **values,
        }
    values["use_when_primary_fails"] = use
    for name, value in values.items():
        setattr(config, name, value)
    config.version += 1
    config.updated_at = timezone.now()
    config.save()
    return config


def backup_post(server: Any = None, **overrides: Any) -> dict[str, Any]:
    """A valid Backup Connection form post (SMTP Basic against ``server`` when given)."""
    values: dict[str, Any] = {
        "version": str(MailServerConfig.load(Connection.BACKUP).version),
        "use_when_primary_fails": "on",
        **BACKUP_ACCOUNT,
    }
    if server is not None:
        values["port"] = str(server.port)
    return smtp_basic_post(**(values | overrides))


def backup_server_users() -> dict[str, str]:
    """The users of a server that only the backup's credentials open."""
    return {BACKUP_USER: BACKUP_PASSWORD}
