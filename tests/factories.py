"""Builders for test data: form posts, users, service account keys."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from settings_app.models import MailServerConfig

PAGE_URL = "/admin/general-settings/mail-server/"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"


def smtp_basic_post(**overrides: Any) -> dict[str, Any]:
    """A valid Mail Server form post for SMTP with Basic authentication."""
    data = {
        "mode": "smtp",
        "server_name": "smtp.example.com",
        "port": "587",
        "security": "tls",
        "auth": "basic",
        "username": "mailer@example.com",
        "password": "s3cret-password",
        "from_address": "mailer@example.com",
        "admin_address": "admin@example.com",
        "oauth_provider": "microsoft",
        "oauth_azure_environment": "azure",
        "api_provider": "microsoft",
        "api_azure_environment": "azure",
        "version": str(MailServerConfig.load().version),
    }
    data.update(overrides)
    return data


# An account the local test SMTP servers accept (tests/servers/smtp_server.py).
LOCAL_SMTP_ACCOUNT = {
    "server_name": "localhost",
    "username": "alice@example.com",
    "password": "s3cret",
    "from_address": "alice@example.com",
}


def smtp_post(server: Any, **overrides: Any) -> dict[str, Any]:
    """A valid form post for SMTP Basic against a local test server."""
    return smtp_basic_post(**({"port": str(server.port), **LOCAL_SMTP_ACCOUNT} | overrides))


def store(**values: Any) -> MailServerConfig:
    """Save a configuration the way the page does (a new version, a new timestamp)."""
    MailServerConfig.ensure_row()
    config = MailServerConfig.load()
    for name, value in values.items():
        setattr(config, name, value)
    config.version += 1
    config.updated_at = timezone.now()
    config.save()
    return config


def store_smtp(server: Any, **overrides: Any) -> MailServerConfig:
    """Save SMTP Basic over STARTTLS against a local test server."""
    values = {"mode": "smtp", "port": server.port, "security": "tls", "auth": "basic"}
    return store(**(values | LOCAL_SMTP_ACCOUNT | overrides))


def user_with_permission(username: str = "operator", password: str = "pass-12345"):
    """A non-superuser given the mail server permission through a group."""
    group, _ = Group.objects.get_or_create(name="Mail administrators")
    group.permissions.add(Permission.objects.get(codename="change_mail_server"))
    user = get_user_model().objects.create_user(username, password=password)
    user.groups.add(group)
    return user


@lru_cache(maxsize=1)
def _private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def service_account_info(**overrides: Any) -> dict[str, Any]:
    """A structurally valid service account key (a real RSA key, a made-up account)."""
    info = {
        "type": "service_account",
        "project_id": "mail-console-test",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": _private_key_pem(),
        "client_email": "mailer@mail-console-test.iam.gserviceaccount.com",
        "client_id": "112233445566778899001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": GOOGLE_TOKEN_URI,
    }
    info.update(overrides)
    return info


def service_account_json(**overrides: Any) -> bytes:
    return json.dumps(service_account_info(**overrides)).encode()


def store_plain_smtp(server: Any) -> None:
    """Save ``server`` (plain SMTP, no authentication) as the Mail Server configuration."""
    store(
        mode="smtp",
        server_name="127.0.0.1",
        port=server.port,
        security="none",
        username="",
        password="",
        from_address="alerts@example.com",
    )
