"""An uploaded Azure app certificate: read it, check it, and keep it as one normalised PEM.

Accepted: a PEM file holding the private key and its certificate (the key may be
encrypted with the password), or a PKCS#12 file (.pfx/.p12) with its password. The
upload must hold a key, the key must belong to the certificate, and the certificate
must be valid now. What is stored is the key (unencrypted, PKCS#8) followed by the
certificate, encrypted at rest like every secret; the subject, thumbprints and
expiry are kept beside it in clear for the page and the expiry radar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from django.core.exceptions import ValidationError
from django.views.decorators.debug import sensitive_variables

CERTIFICATE_MAX_BYTES = 64 * 1024
# Entra ID signs with RSA keys; MSAL signs the assertion with PS256, which needs one.
MINIMUM_RSA_BITS = 2048
# Every certificate credential the configuration stores (an encrypted model field) -> the
# form input of the password that opens its upload (used once, never stored).
CERTIFICATE_SECRETS = {
    "api_certificate": "api_certificate_password",  # Microsoft Graph
    "oauth_certificate": "oauth_certificate_password",  # app-only SMTP
}
# AppCertificate's facts -> the suffix of the model column keeping each, in clear, beside
# the secret ("api_certificate" + "_subject"): the page and the expiry radar read them.
_FACT_SUFFIXES = {
    "subject": "_subject",
    "thumbprint_sha1": "_thumbprint",
    "thumbprint_sha256": "_thumbprint_sha256",
    "not_after": "_expires_at",
}
MAKE_ONE = (
    "Upload the certificate you registered under App registrations > the app > Certificates "
    "& secrets > Certificates, with its private key: a PEM file with both, or a .pfx/.p12 "
    "file and its password."
)


@dataclass(frozen=True, repr=False)
class AppCertificate:
    """A checked certificate credential: the PEM to store and the facts to show."""

    pem: str  # private key + certificate: a secret
    subject: str
    thumbprint_sha1: str  # upper-case hex, as Entra ID lists it
    thumbprint_sha256: str  # upper-case hex; MSAL sends it as x5t#S256
    not_before: datetime
    not_after: datetime

    def __repr__(self) -> str:
        return f"AppCertificate(subject={self.subject!r}, thumbprint={self.thumbprint_sha1})"


def fact_columns(secret: str) -> dict[str, str]:
    """AppCertificate attribute -> the model column holding it for the certificate ``secret``."""
    return {attribute: secret + suffix for attribute, suffix in _FACT_SUFFIXES.items()}


def facts_of(secret: str, certificate: AppCertificate | None) -> dict[str, Any]:
    """The columns to write beside ``secret``: the certificate's facts, or blanks for none."""
    return {
        column: getattr(certificate, attribute)
        if certificate is not None
        else (None if attribute == "not_after" else "")
        for attribute, column in fact_columns(secret).items()
    }


def describe_subject(certificate: x509.Certificate) -> str:
    """The subject as an admin reads it (``CN=mail-console``), at most 512 characters."""
    return certificate.subject.rfc4514_string()[:512] or "(empty subject)"


@sensitive_variables("raw", "password", "key", "loaded")
def parse_certificate_upload(raw: bytes, password: str, *, now: datetime) -> AppCertificate:
    """Check an uploaded certificate credential, or raise ``ValidationError`` saying what to fix."""
    if len(raw) > CERTIFICATE_MAX_BYTES:
        raise ValidationError(
            "This file is larger than 64 KiB; a certificate with its key is a few KiB. " + MAKE_ONE,
            code="too_large",
        )
    secret = password.encode() if password else None
    if b"-----BEGIN" in raw:
        key, certificates = _read_pem(raw, secret)
    else:
        key, certificates = _read_pkcs12(raw, secret)
    if key is None:
        raise ValidationError(
            "This file holds no private key, only the certificate. Microsoft needs the public "
            "certificate; this console needs the private key too. " + MAKE_ONE,
            code="no_key",
        )
    if not certificates:
        raise ValidationError(
            "This file holds a private key but no certificate. " + MAKE_ONE, code="no_certificate"
        )
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValidationError(
            "This key is not an RSA key. Entra ID app credentials use RSA certificates "
            f"(at least {MINIMUM_RSA_BITS} bits): create an RSA certificate.",
            code="not_rsa",
        )
    if key.key_size < MINIMUM_RSA_BITS:
        raise ValidationError(
            f"This RSA key has {key.key_size} bits; use at least {MINIMUM_RSA_BITS}.",
            code="weak_key",
        )
    certificate = _certificate_of(key, certificates)
    not_before = certificate.not_valid_before_utc
    not_after = certificate.not_valid_after_utc
    if not_after <= now:
        raise ValidationError(
            f"This certificate expired on {not_after:%Y-%m-%d %H:%M} UTC, so Microsoft would "
            "refuse it. Create a new certificate, register it under Certificates & secrets of "
            "the app, and upload it here.",
            code="expired",
        )
    if not_before > now:
        raise ValidationError(
            f"This certificate is only valid from {not_before:%Y-%m-%d %H:%M} UTC. Check the "
            "server's clock, or upload it once it is valid.",
            code="not_yet_valid",
        )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    return AppCertificate(
        pem=key_pem + cert_pem,
        subject=describe_subject(certificate),
        thumbprint_sha1=certificate.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303
        thumbprint_sha256=certificate.fingerprint(hashes.SHA256()).hex().upper(),
        not_before=not_before,
        not_after=not_after,
    )


@sensitive_variables("raw", "password")
def _read_pem(raw: bytes, password: bytes | None) -> tuple[object | None, list[x509.Certificate]]:
    try:
        certificates = x509.load_pem_x509_certificates(raw) if b"CERTIFICATE-----" in raw else []
    except ValueError:
        raise ValidationError(
            "The certificate in this PEM file cannot be read. " + MAKE_ONE, code="bad_certificate"
        ) from None
    if b"PRIVATE KEY-----" not in raw:
        return None, certificates
    encrypted = b"ENCRYPTED PRIVATE KEY-----" in raw or b"Proc-Type: 4,ENCRYPTED" in raw
    if encrypted and password is None:
        raise ValidationError(
            "The private key in this PEM file is encrypted: type its password in Certificate "
            "password.",
            code="password_needed",
        )
    try:
        key = serialization.load_pem_private_key(raw, password=password if encrypted else None)
    except ValueError:
        if encrypted:
            raise ValidationError(
                "The password does not open the private key in this PEM file. Type the "
                "password the key was encrypted with.",
                code="wrong_password",
            ) from None
        raise ValidationError(
            "The private key in this PEM file cannot be read. " + MAKE_ONE, code="bad_key"
        ) from None
    except TypeError:  # a password was needed after all, or given for a clear key
        raise ValidationError(
            "The private key in this PEM file cannot be read with or without the password. "
            + MAKE_ONE,
            code="bad_key",
        ) from None
    return key, certificates


@sensitive_variables("raw", "password", "loaded")
def _read_pkcs12(
    raw: bytes, password: bytes | None
) -> tuple[object | None, list[x509.Certificate]]:
    try:
        loaded = pkcs12.load_pkcs12(raw, password)
    except ValueError:
        # cryptography cannot tell a wrong password from a damaged file: say both.
        if password is None:
            raise ValidationError(
                "This file is neither a PEM file nor a PKCS#12 file that opens without a "
                "password. If it is a .pfx/.p12 file, type its password in Certificate "
                "password.",
                code="password_needed",
            ) from None
        raise ValidationError(
            "The password does not open this PKCS#12 (.pfx/.p12) file, or the file is damaged. "
            "Type the password it was exported with.",
            code="wrong_password",
        ) from None
    certificates = [loaded.cert.certificate] if loaded.cert else []
    certificates += [extra.certificate for extra in loaded.additional_certs]
    return loaded.key, certificates


def _certificate_of(
    key: rsa.RSAPrivateKey, certificates: list[x509.Certificate]
) -> x509.Certificate:
    """The certificate whose public key is this private key's (a file may carry a chain too)."""
    public = key.public_key().public_numbers()
    for certificate in certificates:
        candidate = certificate.public_key()
        if isinstance(candidate, rsa.RSAPublicKey) and candidate.public_numbers() == public:
            return certificate
    raise ValidationError(
        "The private key does not belong to the certificate in this file: they are from "
        "different key pairs. Export the certificate together with its own private key.",
        code="key_mismatch",
    )
