"""The client's address for the audit, also behind the operator's reverse proxies."""

from __future__ import annotations

import functools
import ipaddress

from django.conf import settings
from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_ip(request: HttpRequest) -> str | None:
    """The client's address for the audit: REMOTE_ADDR, or behind a trusted proxy, whom it saw.

    X-Forwarded-For is read right to left and only while each hop is a proxy in
    ``MAILCONFIG_TRUSTED_PROXIES``: anything further left was written by the client.
    """
    address = _ip(request.META.get("REMOTE_ADDR", ""))
    if address is None:
        return None
    proxies = _networks(tuple(settings.MAILCONFIG_TRUSTED_PROXIES))
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
    for hop in reversed(forwarded):
        if not any(address in network for network in proxies):
            break
        earlier = _ip(hop)
        if earlier is None:
            break  # garbage in the header: keep the last address a trusted proxy gave
        address = earlier
    return str(address)


@functools.cache
def _networks(values: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


def _ip(value: str) -> IPAddress | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [2001:db8::1]:443
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # 192.0.2.1:443
        value = value.split(":")[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    # An IPv4 client seen through an IPv6 socket: audit it as IPv4.
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address
