"""Builders for Azure app certificates in tests: real RSA keys and X.509, PEM and PKCS#12."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from tests.fakes.base import b64url


@lru_cache(maxsize=3)
def rsa_key(index: int = 0) -> rsa.RSAPrivateKey:
    """A 2048-bit RSA key (generation is slow: a few per process)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
    *,
    subject: str = "mail-console",
    expires_at: datetime | None = None,
    valid_days: float = 365,
    not_before: datetime | None = None,
) -> x509.Certificate:
    """A self-signed certificate, as ``New-SelfSignedCertificate`` or openssl would make one."""
    key = key or rsa_key()
    now = datetime.now(UTC)
    not_after = expires_at or now + timedelta(days=valid_days)
    start = not_before or min(now, not_after) - timedelta(days=30)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )


def key_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, password: str = "") -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def cert_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def pem_upload(
    key: rsa.RSAPrivateKey | None = None,
    certificate: x509.Certificate | None = None,
    *,
    password: str = "",
    name: str = "mail-console.pem",
) -> SimpleUploadedFile:
    """A PEM file with the private key and the certificate, as the form receives it."""
    key = key or rsa_key()
    certificate = certificate or self_signed(key)
    return SimpleUploadedFile(name, key_pem(key, password) + cert_pem(certificate))


def pkcs12_bytes(
    key: rsa.RSAPrivateKey | None, certificate: x509.Certificate, password: str
) -> bytes:
    return pkcs12.serialize_key_and_certificates(
        b"mail-console",
        key,
        certificate,
        None,
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption(),
    )


def pkcs12_upload(
    key: rsa.RSAPrivateKey | None = None,
    certificate: x509.Certificate | None = None,
    *,
    password: str = "pfx-password",
) -> SimpleUploadedFile:
    """A .pfx file (key and certificate) protected by ``password``."""
    key = key or rsa_key()
    certificate = certificate or self_signed(key)
    return SimpleUploadedFile("mail-console.pfx", pkcs12_bytes(key, certificate, password))


def sha1_thumbprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303  (as Entra ID shows it)


def sha256_thumbprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex().upper()


def stored_certificate_fields(
    prefix: str,
    key: rsa.RSAPrivateKey | None = None,
    certificate: x509.Certificate | None = None,
) -> dict[str, Any]:
    """What the page stores for an uploaded certificate in the ``prefix`` fields ("api":
    Microsoft Graph, "oauth": app-only SMTP): key and certificate as one PEM, and its facts."""
    key = key or rsa_key()
    certificate = certificate or self_signed(key)
    return {
        f"{prefix}_certificate": (key_pem(key) + cert_pem(certificate)).decode(),
        f"{prefix}_certificate_subject": certificate.subject.rfc4514_string(),
        f"{prefix}_certificate_thumbprint": sha1_thumbprint(certificate),
        f"{prefix}_certificate_thumbprint_sha256": sha256_thumbprint(certificate),
        f"{prefix}_certificate_expires_at": certificate.not_valid_after_utc,
    }


def register_certificate_only_app(
    microsoft_fake: Any,
    tenant: str,
    client_id: str,
    *,
    subject: str = "mail-console",
    roles: tuple[str, ...] = ("Mail.Send",),
) -> x509.Certificate:
    """An app registration at the Microsoft fake that knows only a new certificate (no
    client secret); returns the certificate."""
    certificate = self_signed(rsa_key(), subject=subject)
    microsoft_fake.add_app(tenant, client_id, "", roles=roles)
    microsoft_fake.add_certificate(tenant, client_id, certificate)
    return certificate


def stored_column(column: str) -> str:
    """A column of the Mail Server record as the database holds it (encrypted for secrets)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM settings_app_mailserverconfig")  # noqa: S608
        return cursor.fetchone()[0]


def assert_signed_with(assertion: tuple[dict, dict], certificate: x509.Certificate, client_id: str):
    """MSAL's client assertion as Entra ID checks it: it names ``certificate`` by its SHA-256
    thumbprint (x5t#S256, no SHA-1 x5t), is signed PS256, and is issued by and for the app."""
    header, claims = assertion
    assert header["x5t#S256"].rstrip("=") == b64url(certificate.fingerprint(hashes.SHA256()))
    assert "x5t" not in header and header["alg"] == "PS256"
    assert claims["iss"] == claims["sub"] == client_id
