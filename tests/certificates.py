"""Builders for Azure app certificates in tests: real RSA keys and X.509, PEM and PKCS#12."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from django.core.files.uploadedfile import SimpleUploadedFile


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
