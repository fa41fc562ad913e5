"""Retry now: the incident banner's button that lifts a paused connection's pause.

While a connection's account is refused, sending through it waits (``sender/pauses.py``).
The admin who fixed the cause outside the console (unlocked the account, granted the
permission at the provider) presses **Retry now**: the waiting messages go again, and
the next attempt signs in once. The press is audited like every other admin action.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from mailconfig.client_address import client_ip
from mailconfig.signed_in import SignedInRequest
from sender import pauses
from sender.models import Incident

from .models import AuditEntry, MailServerConfig

RETRY_NOW_ACTION = "Retried sending now"


@require_POST
def retry_now(request: SignedInRequest, pk: int) -> HttpResponse:
    """Resume sending through the connection of open incident ``pk``; back to the page."""
    incident = Incident.objects.filter(pk=pk, closed_at__isnull=True).first()
    if incident is None:
        messages.info(request, "Mail is being delivered again: there is nothing to retry.")
        return _back(request)
    released = pauses.resume(
        incident.connection, f"{request.user.get_username()} pressed Retry now"
    )
    AuditEntry.objects.create(
        user=request.user,
        username=request.user.get_username(),
        source_ip=client_ip(request),
        version=MailServerConfig.load(incident.connection).version,
        action=RETRY_NOW_ACTION,
        connection=incident.connection,
        changed_fields=[f"Incident #{incident.pk}: {released} waiting message(s) queued again"],
    )
    messages.success(
        request,
        f"Sending through the {incident.get_connection_display().lower()} connection resumes: "
        f"{released} waiting message{'s' if released != 1 else ''} queued again. If the "
        "server refuses again, sending pauses again after one try.",
    )
    return _back(request)


def _back(request: HttpRequest) -> HttpResponse:
    # Back to the page the banner was on; only a path of this site.
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ) and target.startswith("/"):
        return redirect(target)
    return redirect("settings_app:email_log")
