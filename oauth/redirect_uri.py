"""The redirect URI admins register at Microsoft and Google: one exact string."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest
from django.urls import get_script_prefix, reverse

CALLBACK_PATH = "RestAPI/WC/OAuthSetting"
# Microsoft and Google accept a plain-http redirect URI only on these hosts.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def redirect_uri(request: HttpRequest) -> str:
    """``MAILCONFIG_PUBLIC_URL`` (or the request's origin) + context path + the callback path.

    The configured public URL is preferred: the Host header is chosen by the client.
    """
    public = settings.MAILCONFIG_PUBLIC_URL
    if not public:
        return request.build_absolute_uri(reverse("oauth:callback"))
    base = public.rstrip("/")
    prefix = get_script_prefix().rstrip("/")
    if prefix and not base.endswith(prefix):
        base += prefix  # the public URL was given as an origin only
    return f"{base}/{CALLBACK_PATH}"


def opened_elsewhere(request: HttpRequest, uri: str) -> bool:
    """True when the console is open under another host than the redirect URI's.

    The provider sends the browser back to the redirect URI's host, where this
    browser has no session cookie, so the authorization could not complete.
    """
    registered = urlsplit(uri)
    current = urlsplit(request.build_absolute_uri("/"))
    return (registered.hostname, registered.port) != (current.hostname, current.port)


def refused_as_plain_http(uri: str) -> bool:
    """True when providers will refuse this redirect URI: ``http://`` on a non-loopback host.

    Microsoft and Google take plain-http redirect URIs only for localhost; anything
    else must be https. This catches the console being opened (or published) over
    plain http, e.g. behind a proxy that ends TLS without telling Django.
    """
    parts = urlsplit(uri)
    return parts.scheme == "http" and (parts.hostname or "") not in LOOPBACK_HOSTS
