"""Secrets sealed with a passphrase for a settings file: scrypt, then AES-256-GCM.

Only ``cryptography``'s primitives, no cipher of our own. The passphrase goes
through scrypt (N=2^17, r=8, p=1, a random salt); HKDF splits the result into the
AES key and a key check. The check tells a wrong passphrase apart from a changed
file: with the right passphrase, a GCM failure can only mean the file was altered.
The rest of the file (every plain field) is the GCM associated data, so changing
any of it, not only the secrets, is noticed on import.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

KDF = "scrypt"
CIPHER = "AES-256-GCM"
# OWASP's recommended minimum for scrypt: about 128 MiB and a second per derivation.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1
# A crafted file must not make the import use gigabytes of memory or minutes of CPU: at
# most twice the memory and twice the work of what this console writes (256 MiB, ~2 s).
MAX_SCRYPT_N, MAX_SCRYPT_R, MAX_SCRYPT_P = 2**18, 8, 2
MAX_SCRYPT_COST = 2 * SCRYPT_N * SCRYPT_R * SCRYPT_P  # n * r * p
MIN_PASSPHRASE_LENGTH = 12


class SealError(Exception):
    """The sealed secrets cannot be opened; the message says why, for the admin."""


class WrongPassphrase(SealError):
    """The passphrase is not the one the file was sealed with."""


class TamperedFile(SealError):
    """The file was changed after it was exported."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, name: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except ValueError as err:
        raise TamperedFile(f"The sealed secrets' {name} is not valid base64.") from err


def _keys(passphrase: str, salt: bytes, n: int, r: int, p: int) -> tuple[bytes, bytes]:
    """(AES key, key check) from the passphrase."""
    master = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))
    material = HKDF(
        algorithm=hashes.SHA256(), length=64, salt=None, info=b"mailconfig settings file"
    ).derive(master)
    return material[:32], material[32:]


def seal(secrets: dict[str, Any], passphrase: str, associated_data: bytes) -> dict[str, Any]:
    """The secrets (any JSON value) encrypted under the passphrase, bound to the rest of the file."""
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise SealError(f"The passphrase must be at least {MIN_PASSPHRASE_LENGTH} characters long.")
    salt, nonce = os.urandom(16), os.urandom(12)
    key, check = _keys(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    plaintext = json.dumps(secrets, sort_keys=True).encode("utf-8")
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, associated_data)
    return {
        "kdf": {"name": KDF, "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)},
        "cipher": CIPHER,
        "nonce": _b64(nonce),
        "key_check": _b64(check),
        "ciphertext": _b64(ciphertext),
    }


def unseal(sealed: Any, passphrase: str, associated_data: bytes) -> Any:
    """The secrets ``seal`` put in; ``WrongPassphrase`` or ``TamperedFile`` otherwise."""
    if not isinstance(sealed, dict) or not isinstance(sealed.get("kdf"), dict):
        raise TamperedFile("The sealed secrets are not in the expected form.")
    kdf = sealed["kdf"]
    if kdf.get("name") != KDF or sealed.get("cipher") != CIPHER:
        raise SealError(
            f"The secrets are sealed with {kdf.get('name')}/{sealed.get('cipher')}; "
            f"this console reads {KDF}/{CIPHER} only."
        )
    try:
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
    except (KeyError, TypeError, ValueError) as err:
        raise TamperedFile("The sealed secrets' scrypt parameters are missing.") from err
    if not (2 <= n <= MAX_SCRYPT_N and n & (n - 1) == 0 and 1 <= r <= MAX_SCRYPT_R):
        raise TamperedFile("The sealed secrets' scrypt parameters are out of range.")
    if not 1 <= p <= MAX_SCRYPT_P or n * r * p > MAX_SCRYPT_COST:
        raise TamperedFile("The sealed secrets' scrypt parameters are out of range.")
    salt = _unb64(kdf.get("salt"), "salt")
    nonce = _unb64(sealed.get("nonce"), "nonce")
    check = _unb64(sealed.get("key_check"), "key check")
    ciphertext = _unb64(sealed.get("ciphertext"), "ciphertext")
    if len(nonce) != 12 or len(salt) < 16:
        raise TamperedFile("The sealed secrets' nonce or salt has the wrong length.")
    key, expected_check = _keys(passphrase, salt, n, r, p)
    if not hmac.compare_digest(check, expected_check):
        raise WrongPassphrase("The passphrase is not the one this file was exported with.")
    try:
        plaintext = AESGCM(key).decrypt(nonce, ciphertext, associated_data)
    except InvalidTag as err:
        raise TamperedFile(
            "The file was changed after it was exported (its contents no longer match "
            "the sealed secrets)."
        ) from err
    return json.loads(plaintext)
