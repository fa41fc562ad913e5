"""Validation of the Mail Server form's values, each with an error an admin can act on."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.views.decorators.debug import sensitive_variables

GUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
HOST_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
GOOGLE_CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9-]+\.apps\.googleusercontent\.com$")
# The stored columns: service_account_email is 320 characters, service_account_client_id 64.
SERVICE_ACCOUNT_CLIENT_ID_RE = re.compile(r"[0-9]{1,64}")
SERVICE_ACCOUNT_EMAIL_MAX = 320

SERVICE_ACCOUNT_MAX_BYTES = 64 * 1024
SERVICE_ACCOUNT_KEYS = ("client_email", "private_key", "private_key_id", "client_id", "token_uri")


def reject_line_breaks(value: str) -> None:
    """CR or LF in an address would let a value inject extra mail headers."""
    if "\r" in value or "\n" in value:
        raise ValidationError("Line breaks are not allowed here.", code="line_break")


def validate_address(value: str) -> str:
    """A single plain e-mail address (no display name), without line breaks."""
    reject_line_breaks(value)
    value = value.strip()
    try:
        validate_email(value)
    except ValidationError:
        raise ValidationError(
            "Enter a valid e-mail address, for example notifications@example.com.", code="invalid"
        ) from None
    return value


def _is_hostname(value: str) -> bool:
    try:
        ascii_host = value.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_host.rstrip(".").split(".")
    return len(ascii_host) <= 253 and all(HOST_LABEL_RE.match(label) for label in labels)


def validate_host(value: str) -> str:
    """A hostname, an IPv4 address or an IPv6 address (brackets allowed)."""
    reject_line_breaks(value)
    host = value.strip()
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        pass
    if host and not host.replace(".", "").isdigit() and _is_hostname(host):
        return host.rstrip(".").lower()
    raise ValidationError(
        "Enter a server name (smtp.example.com), an IPv4 address or an IPv6 address.",
        code="invalid",
    )


def validate_tenant_id(value: str) -> str:
    """An Azure tenant: its Directory (tenant) ID GUID or a verified domain name."""
    value = value.strip()
    if GUID_RE.match(value) or ("." in value and _is_hostname(value)):
        return value.lower()
    raise ValidationError(
        "Enter the Directory (tenant) ID (a GUID like 0e3b2f1c-...) or the tenant's domain "
        "(contoso.onmicrosoft.com).",
        code="invalid",
    )


def validate_guid(value: str) -> str:
    """An Application (client) ID: a GUID."""
    value = value.strip()
    if GUID_RE.match(value):
        return value.lower()
    raise ValidationError(
        "Enter the Application (client) ID from the app's Overview page: a GUID like "
        "1b2c3d4e-1111-2222-3333-444455556666.",
        code="invalid",
    )


def validate_google_client_id(value: str) -> str:
    """A Google OAuth client ID ends in .apps.googleusercontent.com."""
    value = value.strip()
    if GOOGLE_CLIENT_ID_RE.match(value):
        return value
    raise ValidationError(
        "Enter the OAuth client ID from Google Cloud Console; it ends in "
        ".apps.googleusercontent.com.",
        code="invalid",
    )


@sensitive_variables("raw", "info")  # the private key, in error reports that show locals
def parse_service_account_key(raw: bytes) -> dict[str, Any]:
    """Check an uploaded service account JSON key before anything uses it.

    google-auth posts a signed token to the ``token_uri`` inside the file, so a
    file pointing anywhere but the configured Google token endpoint is refused.
    """
    if len(raw) > SERVICE_ACCOUNT_MAX_BYTES:
        raise ValidationError("This file is larger than 64 KiB; a key file is about 2 KiB.")
    try:
        info = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValidationError(
            "This file is not JSON. Upload the key file Google Cloud Console downloaded "
            "(Service account > Keys > Add key > JSON)."
        ) from None
    except (RecursionError, ValueError):
        # Deep nesting exhausts the parser's stack; a number of thousands of digits
        # exceeds Python's integer limit. Neither occurs in a real key file.
        raise ValidationError(
            "This file is not a service account key: its JSON nests too deeply or holds a "
            "number thousands of digits long. Upload the key file Google Cloud Console "
            "downloaded (Service account > Keys > Add key > JSON)."
        ) from None
    if not isinstance(info, dict):
        raise ValidationError("This JSON file is not a service account key (not an object).")
    if info.get("type") != "service_account":
        raise ValidationError(
            'This JSON file is not a service account key ("type" must be "service_account"). '
            "An OAuth client file will not work here."
        )
    missing = [key for key in SERVICE_ACCOUNT_KEYS if not isinstance(info.get(key), str)]
    if missing:
        raise ValidationError(f"The key file lacks {', '.join(missing)}. Download a new JSON key.")
    _check_service_account_identity(info["client_email"], info["client_id"])
    expected_uri = settings.MAILCONFIG_GOOGLE["token_uri"]
    if info["token_uri"] != expected_uri:
        raise ValidationError(
            f"The key file's token_uri is not {expected_uri}. It was refused because the server "
            "would send a signed token to that address."
        )
    try:
        serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    except (ValueError, TypeError):
        raise ValidationError(
            "The private key in this file cannot be read. Download a new key."
        ) from None
    return info


def _check_service_account_identity(client_email: str, client_id: str) -> None:
    # Both are stored in their own columns and shown on the page, so they must fit
    # the columns and be what Google issues: an ASCII address and a numeric ID.
    try:
        if not client_email.isascii() or len(client_email) > SERVICE_ACCOUNT_EMAIL_MAX:
            raise ValidationError("too long or not ASCII")
        validate_address(client_email)
    except ValidationError:
        raise ValidationError(
            "The key file's client_email is not a valid service account address "
            "(name@project.iam.gserviceaccount.com, at most 320 characters). "
            "Download a new JSON key."
        ) from None
    if not SERVICE_ACCOUNT_CLIENT_ID_RE.fullmatch(client_id):
        raise ValidationError(
            "The key file's client_id is not a service account client ID (digits only, "
            "at most 64). Download a new JSON key."
        )
