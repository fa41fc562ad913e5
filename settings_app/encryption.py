"""Encryption of stored secrets with MultiFernet (keys newest first).

Keys come from ``MAILCONFIG_ENCRYPTION_KEYS`` or, when that is empty, from a key
file generated on first use in the data directory (mode 0600). They are never
derived from ``SECRET_KEY``: rotating one must not silently break the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from mailconfig.keyfile import read_or_create


class EncryptionKeyError(Exception):
    """The configured keys are missing, malformed, or cannot decrypt a stored secret."""


def configured_keys() -> list[str]:
    """Return the key strings in use, newest first (creating the key file if needed)."""
    keys = list(settings.MAILCONFIG_ENCRYPTION_KEYS or [])
    if not keys:
        text = read_or_create(
            Path(settings.MAILCONFIG_KEY_FILE), lambda: Fernet.generate_key().decode() + "\n"
        )
        keys = [line.strip() for line in text.splitlines() if line.strip()]
    if not keys:
        raise EncryptionKeyError(
            f"The encryption key file {settings.MAILCONFIG_KEY_FILE} is empty."
        )
    return keys


@lru_cache(maxsize=4)
def _multifernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError) as err:
        raise EncryptionKeyError(
            "An encryption key is not a valid Fernet key (32 url-safe base64-encoded bytes)."
        ) from err


def fernet() -> MultiFernet:
    """The MultiFernet built from the configured keys."""
    return _multifernet(tuple(configured_keys()))


def encrypt(plaintext: str) -> str:
    """Encrypt with the newest key."""
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """Decrypt with any configured key; raise EncryptionKeyError if none fits."""
    with _no_key_fits_is_a_key_error():
        return fernet().decrypt(token.encode()).decode()


def rotate(token: str) -> str:
    """Re-encrypt a stored token with the newest key."""
    with _no_key_fits_is_a_key_error():
        return fernet().rotate(token.encode()).decode()


@contextmanager
def _no_key_fits_is_a_key_error() -> Iterator[None]:
    try:
        yield
    except InvalidToken as err:
        raise EncryptionKeyError(
            "A stored secret cannot be decrypted with the configured encryption keys."
        ) from err
