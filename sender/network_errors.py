"""Failures to reach a server or talk to it, in plain words: DNS, TCP, TLS and
certificates, timeouts, and HTTPS requests to a provider that got no answer.

Shared by the SMTP transport (``sender.network`` connects for it), the HTTPS APIs and
every token request.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

import requests
from django.conf import settings

from sender import deadline
from sender.errors import MailConnectionError, MailError, ProviderError, TLSError
from sender.http import AnswerCutShort, RedirectRefused

PORT_ADVICE = "The usual ports are 465 for SSL, 587 for TLS (STARTTLS) and 25 for None."


def network_error(step: str, err: BaseException, host: str, port: int, timeout: float) -> MailError:
    """The error for a failure to reach or talk to ``host:port`` (DNS, TCP, TLS, timeout)."""
    where = f"{host}:{port}"
    if isinstance(err, socket.gaierror):
        return MailConnectionError(
            f"The name {host} could not be resolved.",
            step=step,
            code="DNS",
            provider_text=str(err),
            hint="Check the spelling of Server Name or IP, and that this server can resolve it.",
            # "Temporary failure in name resolution" (EAI_AGAIN) passes; a name that does
            # not exist is a wrong Server Name, and waiting will not create it.
            transient=err.errno not in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)),
        )
    if isinstance(err, ssl.SSLCertVerificationError):
        return certificate_error(step, err, host)
    if isinstance(err, ConnectionRefusedError):
        return MailConnectionError(
            f"{where} refused the connection.",
            step=step,
            code="ECONNREFUSED",
            hint=f"Nothing accepts connections on that port. Check the Port Number. {PORT_ADVICE}",
        )
    if isinstance(err, TimeoutError | socket.timeout):
        limit = deadline.current_limit()
        if limit is not None and deadline.expired():
            # The step's own timeout was cut short by the whole test's time limit.
            return deadline.time_limit_error(step, limit)
        return MailConnectionError(
            f"{where} did not answer within {timeout:g} seconds.",
            step=step,
            code="TIMEOUT",
            hint="A firewall may be dropping the connection, or the port is wrong (many "
            f"networks block outgoing port 25). {PORT_ADVICE}",
        )
    if isinstance(err, ssl.SSLError):
        return TLSError(
            "The TLS handshake failed.",
            step=step,
            code=getattr(err, "reason", None) or "TLS",
            provider_text=str(err),
            hint="The server may not speak TLS on this port: SSL is for ports like 465, "
            f"TLS (STARTTLS) for ports like 587. {PORT_ADVICE}",
        )
    return MailConnectionError(
        f"The connection to {where} failed: {err.__class__.__name__}.",
        step=step,
        code=err.__class__.__name__,
        provider_text=str(err),
        hint="Check the Server Name or IP and Port Number, and that this server may connect out.",
    )


def certificate_error(step: str, err: ssl.SSLCertVerificationError, host: str) -> TLSError:
    """A certificate that failed verification, with the reason in plain words."""
    reason = err.verify_message or str(err)
    lowered = reason.lower()
    if "hostname mismatch" in lowered or "ip address mismatch" in lowered:
        hint = (
            f"The server's certificate is not issued for {host}. Use the name the "
            "certificate is issued for in Server Name or IP."
        )
    elif "expired" in lowered:
        hint = "The server's certificate has expired; its administrator must renew it."
    else:
        hint = (
            "The certificate is not signed by a trusted authority. If the server uses a "
            "private CA, point MAILCONFIG_CA_FILE at that CA's certificate."
        )
    return TLSError(
        f"The server's certificate is not valid: {reason}.",
        step=step,
        code="CERTIFICATE",
        provider_text=reason,
        hint=hint,
    )


def http_failure(
    step: str, err: requests.RequestException, url: str, timeout: float | None = None
) -> MailError:
    """The error for an HTTPS request to a provider that got no answer (DNS, TLS, timeout).

    ``timeout`` is the one the request used (the session's), for the message.
    """
    if isinstance(err, RedirectRefused):
        return err.mail_error(step)
    parts = urlsplit(url)
    host, port = parts.hostname or url, parts.port or 443
    timeout = timeout if timeout is not None else settings.MAILCONFIG_TIMEOUT
    if isinstance(err, requests.Timeout):
        return network_error(step, TimeoutError(), host, port, timeout)
    if isinstance(err, AnswerCutShort):
        return answer_cut_short(step, err, host)
    cause = _root_cause(err)
    if cause is not None:
        return network_error(step, cause, host, port, timeout)
    if isinstance(err, requests.exceptions.SSLError):
        return network_error(step, ssl.SSLError(str(err)), host, port, timeout)
    return network_error(step, err, host, port, timeout)


def answer_cut_short(step: str, err: AnswerCutShort, host: str) -> MailError:
    """The server closed the connection in the middle of its answer (a temporary failure)."""
    return MailConnectionError(
        f"{host} closed the connection before its whole answer arrived "
        f"({err.received} bytes were received).",
        step=step,
        code="ANSWER-CUT-SHORT",
        provider_text=str(err),
        hint="This is usually a network fault or the provider restarting, and sending tries "
        "again later. If it keeps happening, a proxy, firewall or TLS-inspecting device "
        "between this server and the provider may be closing connections early.",
    )


_KNOWN_CAUSES = (
    socket.gaierror,
    ssl.SSLCertVerificationError,
    ConnectionRefusedError,
    TimeoutError,
)


def _root_cause(err: BaseException) -> BaseException | None:
    """Dig through requests' and urllib3's wrappers for the socket or TLS error inside."""
    seen: set[int] = set()
    pending: list[object] = [err]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, _KNOWN_CAUSES):
            return current
        pending.extend(current.args)
        pending.extend([getattr(current, "reason", None), current.__cause__, current.__context__])
    return None


def identity_platform_unavailable(step: str, detail: str, provider: str) -> MailError:
    """The token endpoint answered 5xx (MSAL raises, rather than returning an error):
    a temporary failure, tried again later by the outbox."""
    return ProviderError(
        f"{provider}'s token endpoint is not answering normally ({detail}).",
        step=step,
        code="TOKEN-ENDPOINT-UNAVAILABLE",
        provider_text=detail,
        hint="This is usually temporary. If it lasts, check the provider's service status.",
        transient=True,
    )
