"""Reaching a server: the name lookup within the time limit, TCP to the resolved addresses,
verified TLS, and what the transcript says about each.

The SMTP transport connects this way; in API mode Test Mail uses it to show how the
identity platform and the mail API are reached before asking them anything.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from sender import deadline
from sender.errors import MailConnectionError
from sender.http import requests_ca_file
from sender.transcript import Transcript

from .network_errors import network_error

AddressInfo = tuple[Any, ...]  # one row of socket.getaddrinfo()


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """A client context that verifies the certificate and the host name, always."""
    return ssl.create_default_context(cafile=ca_file or None)


@dataclass(frozen=True)
class PeerCertificate:
    """The certificate a server showed: where, whose, and until when (nothing secret)."""

    host: str
    port: int
    subject: str
    not_after: datetime


def peer_certificate(sock: ssl.SSLSocket, host: str, port: int) -> PeerCertificate | None:
    """The verified peer certificate's subject and expiry, or None when it has no date."""
    cert: dict[str, Any] = sock.getpeercert() or {}
    if not cert.get("notAfter"):
        return None
    subject = dict(item[0] for item in cert.get("subject", ()))
    return PeerCertificate(
        host=host,
        port=port,
        subject=str(subject.get("commonName", ""))[:512],
        not_after=datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), UTC),
    )


def describe_tls(sock: ssl.SSLSocket) -> list[str]:
    """Protocol, cipher and certificate facts for the transcript."""
    cert: dict[str, Any] = sock.getpeercert() or {}
    subject = dict(item[0] for item in cert.get("subject", ()))
    issuer = dict(item[0] for item in cert.get("issuer", ()))
    cipher = sock.cipher()
    details = [f"{sock.version()} with {cipher[0] if cipher else 'unknown cipher'}"]
    names = [
        value for kind, value in cert.get("subjectAltName", ()) if kind in ("DNS", "IP Address")
    ]
    details.append(
        "Certificate for "
        + (subject.get("commonName") or ", ".join(names[:3]) or "(no name)")
        + (f", issued by {issuer['commonName']}" if issuer.get("commonName") else "")
    )
    if cert.get("notAfter"):
        expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), UTC)
        details.append(f"Certificate valid until {expires:%Y-%m-%d}")
    return details


def resolve(host: str, port: int, timeout: float) -> list[AddressInfo]:
    """``socket.getaddrinfo`` that gives up after ``timeout`` seconds.

    The system resolver has no timeout we can set per call, so the lookup runs in a
    daemon thread; one that hangs is abandoned rather than holding up the sender.
    """
    outcome: list[Any] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            outcome.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as err:
            outcome.append(err)
        finally:
            done.set()

    threading.Thread(target=lookup, name=f"resolve {host}", daemon=True).start()
    if not done.wait(timeout):
        raise TimeoutError(f"looking up {host} took longer than {timeout:g} seconds")
    if isinstance(outcome[0], OSError):
        raise outcome[0]
    return outcome[0]


def lookup(host: str, port: int, timeout: float, step: str) -> list[AddressInfo]:
    """``resolve`` within the time limit, its failures explained as errors of ``step``."""
    timeout = deadline.remaining(timeout, step)
    try:
        return resolve(host, port, timeout)
    except TimeoutError as err:
        limit = deadline.current_limit()
        if limit is not None and deadline.expired():
            raise deadline.time_limit_error(step, limit) from err
        raise MailConnectionError(
            f"Looking up the name {host} took longer than {timeout:g} seconds.",
            step=step,
            code="TIMEOUT",
            hint="This server's DNS resolver is slow or unreachable: check its DNS "
            "settings (in SMTP mode, entering the mail server's IP address avoids the lookup).",
        ) from err
    except OSError as err:
        raise network_error(step, err, host, port, timeout) from err


def describe_addresses(host: str, infos: list[AddressInfo]) -> str:
    """ "smtp.example.com is 192.0.2.1, 2001:db8::1" (the first four, in the resolver's order)."""
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    return f"{host} is {', '.join(addresses[:4])}"


def connect_first(addresses: list[AddressInfo], timeout: Callable[[], float]) -> socket.socket:
    """A TCP connection to the first address that answers, in order (as
    ``socket.create_connection`` does); ``timeout()`` is asked before each attempt."""
    last_error: OSError = OSError("no address to connect to")
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout())
            sock.connect(address)
        except OSError as err:
            sock.close()
            last_error = err
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise last_error


def show_https_connection(
    url: str, *, ca_file: str | None, timeout: float, transcript: Transcript
) -> None:
    """One transcript step: look up ``url``'s host, connect and shake hands as requests would.

    Only for Test Mail: the requests that follow reuse none of this, but an admin sees
    where a DNS, firewall or TLS-inspection problem lies before any token is asked for.
    Through a proxy the direct connection would prove nothing, so it is not tried.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    step_name = f"Connect to {host}"
    with transcript.step(step_name) as step:
        proxy = requests.utils.get_environ_proxies(url).get("https")
        if proxy:
            proxy_parts = urlsplit(proxy)  # never its user name or password
            step.details.append(
                f"Requests go through the proxy {proxy_parts.hostname}:{proxy_parts.port or ''} "
                "(HTTPS_PROXY): the connection to the provider is the proxy's to make."
            )
            return
        infos = lookup(host, port, timeout, step_name)
        step.details.append(describe_addresses(host, infos))
        try:
            raw = connect_first(infos, lambda: deadline.remaining(timeout, step_name))
            with tls_context(requests_ca_file(ca_file)).wrap_socket(
                raw, server_hostname=host
            ) as sock:
                peer = sock.getpeername()[0]
                step.details.append(
                    f"Connected to {host}:{port}" + (f" ({peer})" if peer != host else "")
                )
                step.details.extend(describe_tls(sock))
        except OSError as err:
            raise network_error(step_name, err, host, port, timeout) from err
