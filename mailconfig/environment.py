"""Reading the environment for the settings: every variable typed and checked in one way.

Each reader takes the variable's name, its default and what it allows. An empty
value counts as unset. A value that is not allowed raises ``BadVariable``, whose
message is one line: the variable, the value (``(hidden)`` for a secret) and what
is allowed. ``manage.py`` prints that line and exits with status 1, before
anything runs. ``DATABASE_URL`` is parsed by django-environ (the URL schemes and
options it knows); the other checks are here because django-environ's own casts
are lenient where this console must not be (its yes/no reads ``ture`` as no, and it
resolves a value starting with ``$`` as the name of another variable, which would
silently replace a secret that starts with one).

Imports no app module: ``mailconfig/settings.py`` uses it before apps are loaded.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import math
import os
import re
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")
HIDDEN = "(hidden)"


# A host name (letters, digits, hyphens; dot-separated labels) or an address literal.
_EHLO_HOST_NAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


def is_ehlo_name(value: str) -> bool:
    """A host name, or an address literal: ``[192.0.2.1]``, ``[IPv6:2001:db8::1]`` (RFC 5321)."""
    if value.startswith("[") and value.endswith("]"):
        literal = value[1:-1]
        try:
            if literal[:5].lower() == "ipv6:":
                ipaddress.IPv6Address(literal[5:])
            else:
                ipaddress.IPv4Address(literal)
        except ValueError:
            return False
        return True
    return bool(_EHLO_HOST_NAME.fullmatch(value))


class BadVariable(ImproperlyConfigured):
    """An environment variable whose value is not allowed: stops start-up with one line."""

    def __init__(self, name: str, value: str, allowed: str, *, secret: bool = False) -> None:
        self.name = name
        shown = HIDDEN if secret else repr(value)
        super().__init__(f"{name}: {shown} is not {allowed}.")


class Environment:
    """Typed readers for environment variables (``os.environ`` unless given another)."""

    def __init__(self, variables: Mapping[str, str] | None = None) -> None:
        self.variables = os.environ if variables is None else variables

    def raw(self, name: str) -> str | None:
        """The variable's value stripped of surrounding blanks, or None when unset or empty."""
        value = self.variables.get(name, "").strip()
        return value or None

    def text(
        self, name: str, default: str = "", *, min_length: int = 0, secret: bool = False
    ) -> str:
        """Free text (a secret is never shown back in the error)."""
        value = self.raw(name)
        if value is None:
            return default
        if len(value) < min_length:
            raise BadVariable(name, value, f"at least {min_length} characters", secret=secret)
        return value

    def boolean(self, name: str, default: bool) -> bool:
        """Yes/no: true, yes, on, 1 or false, no, off, 0 (any case); nothing else."""
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in TRUE_WORDS:
            return True
        if value.lower() in FALSE_WORDS:
            return False
        raise BadVariable(name, value, "yes or no: true, yes, on, 1 or false, no, off, 0")

    def integer(self, name: str, default: int, *, minimum: int, maximum: int, unit: str) -> int:
        """A whole number of ``unit`` from ``minimum`` to ``maximum``."""
        value = self.raw(name)
        if value is None:
            return default
        if value.isascii() and value.isdigit() and minimum <= int(value) <= maximum:
            return int(value)
        raise BadVariable(name, value, f"a whole number of {unit} from {minimum} to {maximum}")

    def seconds(self, name: str, default: float, *, maximum: float, zero: bool = False) -> float:
        """One number of seconds, more than 0 (or 0 too, with ``zero``) and at most ``maximum``."""
        value = self.raw(name)
        if value is None:
            return default
        number = _number(value)
        if number is not None and (number >= 0 if zero else number > 0) and number <= maximum:
            return number
        low = "from 0" if zero else "more than 0"
        raise BadVariable(name, value, f"a number of seconds {low} and at most {_plain(maximum)}")

    def seconds_list(self, name: str, default: str, *, maximum: float) -> list[float]:
        """Comma-separated numbers of seconds, each from 0 to ``maximum``. Unlike other
        variables, one set but empty means an empty list (no retries), as it always has."""
        value = self.variables.get(name)
        items = [item.strip() for item in (default if value is None else value).split(",")]
        numbers = [_number(item) for item in items if item]
        if all(n is not None and 0 <= n <= maximum for n in numbers):
            return [n for n in numbers if n is not None]
        raise BadVariable(
            name,
            value or "",
            f"comma-separated numbers of seconds from 0 to {_plain(maximum)}, for example 60,300,900",
        )

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        """One of ``choices`` (compared in lower case)."""
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in choices:
            return value.lower()
        raise BadVariable(name, value, "one of " + ", ".join(choices))

    def log_level(self, name: str, default: str) -> str:
        """A logging level name, in upper case."""
        levels = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
        value = self.raw(name)
        if value is None:
            return default
        if value.upper() in levels:
            return value.upper()
        raise BadVariable(name, value, "one of " + ", ".join(levels))

    def host_names(self, name: str, default: str) -> list[str]:
        """Comma-separated host names or addresses, without a scheme, port path or blanks."""
        hosts = _items(self.raw(name) or default)
        for host in hosts:
            if any(mark in host for mark in ("/", " ", "@")):
                raise BadVariable(
                    name,
                    host,
                    "a host name: give comma-separated host names or addresses without "
                    "a scheme or path, for example mail.example.com,.example.com",
                )
        return hosts

    def origins(self, name: str) -> list[str]:
        """Comma-separated origins: ``https://host`` or ``http://host[:port]``, nothing after."""
        origins = _items(self.raw(name) or "")
        for origin in origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise BadVariable(
                    name,
                    origin,
                    "an origin: scheme and host only, for example https://mail.example.com",
                )
        return origins

    def networks(self, name: str) -> list[str]:
        """Comma-separated IP addresses or networks (10.0.0.5, 10.0.0.0/24)."""
        values = _items(self.raw(name) or "")
        for value in values:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise BadVariable(
                    name,
                    value,
                    "an IP address or network: use comma-separated addresses or CIDR "
                    "networks, for example 10.0.0.5,192.0.2.0/24",
                ) from None
        return values

    def url(self, name: str) -> str | None:
        """An ``http://`` or ``https://`` URL with a host, or None when unset."""
        value = self.raw(name)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme in ("http", "https") and parts.hostname and " " not in value:
            return value
        raise BadVariable(
            name, value, "an http:// or https:// URL, for example https://mail.example.com"
        )

    def script_name(self, name: str) -> str | None:
        """A URL path that starts with ``/`` (a context path), or None when unset."""
        value = self.raw(name)
        if value is None:
            return None
        if value.startswith("/") and not value.startswith("//") and " " not in value:
            return value
        raise BadVariable(name, value, "a path starting with /, for example /mailconsole")

    def time_zone(self, name: str, default: str) -> str:
        """A time zone name of the IANA database (UTC, Europe/Berlin)."""
        value = self.raw(name)
        if value is None:
            return default
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise BadVariable(
                name, value, "a time zone name, for example UTC or Europe/Berlin"
            ) from None
        return value

    def ehlo_name(self, name: str) -> str | None:
        """The name to give in SMTP EHLO: a host name or an address literal (None: unset)."""
        value = self.raw(name)
        if value is not None and not is_ehlo_name(value):
            raise BadVariable(
                name,
                value,
                "a host name (mail.example.com) or an address literal "
                "([192.0.2.1], [IPv6:2001:db8::1])",
            )
        return value

    def directory(self, name: str, default: Path, *, mode: int = 0o777) -> Path:
        """A directory, created (with ``mode``) if missing; one this process may write."""
        value = self.raw(name)
        path = Path(value or default).resolve()
        with contextlib.suppress(OSError):  # judged below, with the variable's name
            path.mkdir(mode=mode, parents=True, exist_ok=True)
        if not (path.is_dir() and os.access(path, os.W_OK | os.X_OK)):
            raise BadVariable(
                name, str(value or default), "a directory this process can create and write"
            )
        return path

    def readable_file(self, name: str) -> str | None:
        """The path of a readable file, or None when unset."""
        value = self.raw(name)
        if value is None:
            return None
        if os.path.isfile(value) and os.access(value, os.R_OK):
            return value
        raise BadVariable(name, value, "the path of a readable file")

    def fernet_keys(self, name: str) -> list[str]:
        """Comma-separated Fernet keys (32 url-safe base64-encoded bytes each); a secret."""
        keys = _items(self.raw(name) or "")
        for key in keys:
            try:
                valid = len(base64.urlsafe_b64decode(key.encode("ascii"))) == 32
            except (binascii.Error, ValueError):
                valid = False
            if not valid:
                raise BadVariable(
                    name,
                    key,
                    "a list of Fernet keys (32 url-safe base64-encoded bytes each)",
                    secret=True,
                )
        return keys

    def database(self, name: str, default: str, *, conn_max_age: int) -> dict[str, Any]:
        """Django's DATABASES entry for a database URL (django-environ); a secret, since the
        URL may hold a password."""
        value = self.raw(name) or default
        allowed = "a database URL, for example postgresql://user@host:5432/name or sqlite:////path/db.sqlite3"
        if urlsplit(value).scheme not in environ.Env.DB_SCHEMES:
            raise BadVariable(name, value, allowed, secret=True)
        try:
            config = environ.Env.db_url_config(value)
        except ValueError:
            raise BadVariable(name, value, allowed, secret=True) from None
        config["CONN_MAX_AGE"] = conn_max_age
        return config


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _plain(number: float) -> str:
    """10000000, not 1e+07; 2.5 as it is."""
    return str(int(number)) if number == int(number) else str(number)
