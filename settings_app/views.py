"""The Mail Server page. Views stay thin: parse input, call the function that does the work."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from oauth import page as oauth_page

from .forms import MailServerForm
from .models import DEFAULT_PORTS, AuditEntry, MailServerConfig
from .saving import VersionConflict, save_settings
from .values import azure_environments

AUDIT_ROWS = 20


def client_ip(request: HttpRequest) -> str | None:
    """The connecting address (behind a proxy, configure it to pass the client's address)."""
    return request.META.get("REMOTE_ADDR") or None


@require_http_methods(["GET", "POST"])
def mail_server(request: HttpRequest) -> HttpResponse:
    """Admin > General Settings > Mail Server: show and save the configuration."""
    stored = MailServerConfig.load()
    if request.method != "POST":
        return render_page(request, MailServerForm(stored=stored), stored)

    form = MailServerForm(request.POST, request.FILES, stored=stored)
    if not form.is_valid():
        return render_page(request, form, stored)
    try:
        result = save_settings(form, user=request.user, source_ip=client_ip(request))
    except VersionConflict as conflict:
        # Keep every typed value; let the next save go over the newer version knowingly.
        form.data = form.data.copy()
        form.data["version"] = conflict.current.version
        messages.error(
            request,
            f"Not saved: {conflict.describe()}, after you opened this page. "
            "Your entries are still on the form: review them and press Save Settings again.",
        )
        return render_page(request, form, conflict.current, status=409)
    if result.changed:
        messages.success(request, "Settings saved: " + ", ".join(result.changed) + ".")
    else:
        messages.info(request, "Settings saved. Nothing had changed.")
    return redirect(
        oauth_page.after_save_redirect(request, result.config) or "settings_app:mail_server"
    )


def render_page(
    request: HttpRequest, form: MailServerForm, stored: MailServerConfig, status: int = 200
) -> HttpResponse:
    """Render the page around a form (fresh, invalid, or in conflict)."""
    context = {
        "form": form,
        "stored": stored,
        "audit_entries": AuditEntry.objects.all()[:AUDIT_ROWS],
        "azure_environments": azure_environments(),
        **oauth_page.page_context(request, stored),
        "default_ports": json.dumps({str(key): port for key, port in DEFAULT_PORTS.items()}),
    }
    return render(request, "settings_app/mail_server.html", context, status=status)


@require_http_methods(["POST"])
def test_mail(request: HttpRequest) -> HttpResponse:
    """Send a test message with the values on the form (wired up by the sender)."""
    return redirect("settings_app:mail_server")
