"""The Mail Server and Backup Connection pages: one form, one template, one set of views,
parameterised by the connection. Views stay thin: parse input, call the function that
does the work."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import cast

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from mailconfig.client_address import client_ip
from mailconfig.signed_in import SignedInRequest
from oauth import page as oauth_page
from sender import permission_check
from sender.models import HealthCheckSchedule

from . import delivery_summary, email_log, expiry_alerts, health_check_page
from .database_faults import UNAVAILABLE_STATUS, describe_database_error
from .expiry_radar import radar
from .forms import TYPED_SECRETS, MailServerForm
from .microsoft_365 import basic_auth_at_risk, host_patterns, sunset_phrase
from .models import (
    CONNECTION_PAGE_TITLES,
    CONNECTION_PAGES,
    DEFAULT_PORTS,
    AuditEntry,
    Connection,
    MailServerConfig,
)
from .saving import VersionConflict, save_settings
from .sending_methods import (
    fields_new_after_basic,
    show_if_methods,
    show_if_rules,
    switch_to_choices,
)
from .test_mail import (
    TestAlreadyRunning,
    describe_outcome,
    one_test_per_user,
    record_test_mail,
    run_test_mail,
    settings_from_form,
)
from .validators import validate_address
from .values import azure_environment, azure_environments

AUDIT_ROWS = 20
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionPage:
    """What differs between the Mail Server page and the Backup Connection page."""

    connection: str
    title: str
    url_name: str
    test_mail_url_name: str
    check_permissions_url_name: str

    @property
    def is_backup(self) -> bool:
        return self.connection == Connection.BACKUP


PAGES: dict[str, ConnectionPage] = {
    Connection.PRIMARY: ConnectionPage(
        Connection.PRIMARY,
        CONNECTION_PAGE_TITLES[Connection.PRIMARY],
        CONNECTION_PAGES[Connection.PRIMARY],
        "settings_app:test_mail",
        "settings_app:check_permissions",
    ),
    Connection.BACKUP: ConnectionPage(
        Connection.BACKUP,
        CONNECTION_PAGE_TITLES[Connection.BACKUP],
        CONNECTION_PAGES[Connection.BACKUP],
        "settings_app:backup_test_mail",
        "settings_app:backup_check_permissions",
    ),
}


# A 500 mails a report to the Admin Mail Address: typed secrets must show as stars in it.
@sensitive_post_parameters(*TYPED_SECRETS)
@require_http_methods(["GET", "POST"])
def mail_server(request: SignedInRequest, connection: str = Connection.PRIMARY) -> HttpResponse:
    """Admin > General Settings > Mail Server (or Backup Connection): show and save it."""
    stored = MailServerConfig.load(connection)
    if request.method != "POST":
        return render_page(request, MailServerForm(stored=stored), stored)

    form = MailServerForm(request.POST, request.FILES, stored=stored)
    if not form.is_valid():
        return render_page(request, form, stored)
    try:
        result = save_settings(form, user=request.user, source_ip=client_ip(request))
    except VersionConflict as conflict:
        # Keep every typed value; let the next save go over the newer version knowingly.
        posted = cast(QueryDict, form.data).copy()  # a POST: mutable once copied
        posted["version"] = str(conflict.current.version)
        form.data = posted
        kept = (
            "Your other entries are still on the form; re-enter the secrets named below"
            if form.rejected_secrets
            else "Your entries are still on the form"
        )
        messages.error(
            request,
            f"Not saved: {conflict.describe()}, after you opened this page. "
            f"{kept}: review them and press Save Settings again.",
        )
        return render_page(request, form, conflict.current, status=409, extra={"conflict": True})
    except DatabaseError as fault:
        # Read-only or locked: the transaction rolled back. Keep the typed values on the page.
        logger.error("Mail server settings not stored: %s (%s)", fault, type(fault).__name__)
        kept = "Your entries are still on the form" + (
            ", except the secrets named below" if form.rejected_secrets else ""
        )
        messages.error(
            request,
            f"The settings could not be stored. {describe_database_error(fault)} "
            f"Nothing was changed. {kept}: press Save Settings again once the database is "
            "available.",
        )
        return render_page(
            request, form, stored, status=UNAVAILABLE_STATUS, extra={"not_stored": True}
        )
    if result.changed:
        messages.success(request, "Settings saved: " + ", ".join(result.changed) + ".")
    else:
        messages.info(request, "Settings saved. Nothing had changed.")
    return oauth_page.after_save_response(request, result.config) or redirect(
        PAGES[stored.connection].url_name
    )


def render_page(
    request: HttpRequest,
    form: MailServerForm,
    stored: MailServerConfig,
    status: int = 200,
    extra: dict[str, object] | None = None,
) -> HttpResponse:
    """Render the page around a form (fresh, invalid, in conflict, or after a Test Mail)."""
    page = PAGES[stored.connection]
    context = {
        **(extra or {}),
        "page": page,
        "form": form,
        "stored": stored,
        "audit_entries": AuditEntry.objects.filter(connection=page.connection)[:AUDIT_ROWS],
        # The Mail Server page says how mail is flowing and whether a backup stands by.
        "delivery": None if page.is_backup else email_log.delivery_summary(),
        "delivery_hours": None if page.is_backup else delivery_summary.last_day(),
        "backup": None if page.is_backup else MailServerConfig.load(Connection.BACKUP),
        "timeout_seconds": math.ceil(settings.MAILCONFIG_TIMEOUT),
        "failover_after": describe_seconds(settings.MAILCONFIG_FAILOVER_AFTER),
        "csrf_cookie_name": settings.CSRF_COOKIE_NAME,
        # Server-side for the first paint and without JavaScript; mail_server.js keeps it
        # up to date as the admin types (same host list, data-m365-hosts).
        "basic_auth_sunset": basic_auth_at_risk(form.value),
        "basic_auth_sunset_when": sunset_phrase(),
        "microsoft_365_hosts": json.dumps(host_patterns()),
        "switch_guide": switch_guide(form),
        "app_only_scope": azure_environment(form.value("oauth_azure_environment")).smtp_app_scope,
        "app_only_scopes": json.dumps(
            {key: env.smtp_app_scope for key, env in azure_environments().items()}
        ),
        "azure_environments": azure_environments(),
        **oauth_page.page_context(request, stored),
        "default_ports": json.dumps({str(key): port for key, port in DEFAULT_PORTS.items()}),
        "show_if": show_if_rules(),
        "switch_to": switch_to_choices(),
        **health_check_page.page_context(
            cast("health_check_page.HealthCheckForm | None", (extra or {}).get("health_form"))
        ),
        "show_if_method": show_if_methods(),
        "radar": expiry_alerts.with_last_alert(radar()),
    }
    return render(request, "settings_app/mail_server.html", context, status=status)


@require_POST
def save_health_check(request: SignedInRequest) -> HttpResponse:
    """The Health check section's own Save: the schedule, audited; the page again if invalid."""
    form = health_check_page.HealthCheckForm(
        request.POST, instance=HealthCheckSchedule.load(), prefix=health_check_page.PREFIX
    )
    if not form.is_valid():
        messages.error(request, "The health check was not saved: correct the fields marked below.")
        stored = MailServerConfig.load()
        return render_page(
            request, MailServerForm(stored=stored), stored, extra={"health_form": form}
        )
    done = health_check_page.save_schedule(form, user=request.user, source_ip=client_ip(request))
    messages.success(request, done)
    return redirect(reverse("settings_app:mail_server") + "#health-check")


@sensitive_post_parameters(*TYPED_SECRETS)
@require_http_methods(["POST"])
def test_mail(request: SignedInRequest, connection: str = Connection.PRIMARY) -> HttpResponse:
    """Send a test message with the values on the form, unsaved; blank secrets mean the
    stored ones of the page's connection (only for its saved destination).

    Answers a transcript fragment to the page's script, or the whole page without JavaScript.
    """
    stored = MailServerConfig.load(connection)
    form = MailServerForm(request.POST, request.FILES, stored=stored, signs_in_now=True)
    context: dict[str, object] = {}
    recipient_error = ""
    recipient = request.POST.get("test_recipient") or request.POST.get("admin_address") or ""
    try:
        recipient = validate_address(recipient)
    except ValidationError as err:
        recipient_error = f"Recipient: {err.messages[0]}"
    stored_used: list[str] = []
    if not form.is_valid() or recipient_error:
        lines = form_error_lines(form) + ([recipient_error] if recipient_error else [])
        context = {"test_errors": lines}
        wrong = [form.audit_name(name) for name in form.errors if name in form.fields]
        wrong += ["the form"] * bool(form.non_field_errors()) + ["Recipient"] * bool(
            recipient_error
        )
        result = "not sent: to correct first: " + ", ".join(dict.fromkeys(wrong))
    else:
        stored_used = form.stored_secrets_used()
        if form.method.uses_grant:
            stored_used.append("SMTP OAuth authorization")
        try:
            with one_test_per_user(request.user):
                transcript = run_test_mail(
                    settings_from_form(form),
                    recipient,
                    requested_by=request.user.get_username(),
                )
            context = {"transcript": transcript, "recipient": recipient}
            result = describe_outcome(transcript, recipient)
        except TestAlreadyRunning:
            context = {
                "test_errors": ["A Test Mail is already running for you; wait for it to finish."]
            }
            result = "not sent: another Test Mail of this user was running"
    record_test_mail(
        request.user,
        source_ip=client_ip(request),
        version=stored.version,
        destination=form.destination_summary(),
        stored_secrets=stored_used,
        result=result,
        connection=stored.connection,
    )
    if request.headers.get("X-Requested-With") == "fetch":
        return render(request, "settings_app/_test_result.html", context)
    return render_page(request, form, stored, extra=context)


@sensitive_post_parameters(*TYPED_SECRETS)
@require_http_methods(["POST"])
def check_permissions(
    request: SignedInRequest, connection: str = Connection.PRIMARY
) -> HttpResponse:
    """Check what the account on the form may do, sending nothing (values unsaved, as Test Mail).

    Answers the list of findings to the page's script, or the whole page without JavaScript.
    """
    stored = MailServerConfig.load(connection)
    form = MailServerForm(request.POST, request.FILES, stored=stored, signs_in_now=True)
    if not form.is_valid():
        context: dict[str, object] = {"permission_errors": form_error_lines(form)}
    else:
        try:
            with one_test_per_user(request.user):
                context = {"findings": permission_check.check_permissions(settings_from_form(form))}
        except TestAlreadyRunning:
            context = {
                "permission_errors": [
                    "A Test Mail or permission check is already running for you; wait for it "
                    "to finish."
                ]
            }
    if request.headers.get("X-Requested-With") == "fetch":
        return render(request, "settings_app/_permission_result.html", context)
    return render_page(request, form, stored, extra=context)


def switch_guide(form: MailServerForm) -> dict[str, dict[str, str]]:
    """Per method, what a one-click switch from Basic asks for next: field names and labels."""
    return {
        key: {
            "fields": ",".join(names),
            # The Azure environment has a default: it is checked, not filled in.
            "labels": ", ".join(
                str(form.fields[name].label) for name in names if "azure_environment" not in name
            ),
        }
        for key, names in fields_new_after_basic().items()
    }


def describe_seconds(seconds: float) -> str:
    """A duration in words: "10 minutes", "90 seconds", "1 hour"."""
    seconds = round(seconds)
    for size, unit in ((3600, "hour"), (60, "minute")):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def form_error_lines(form: MailServerForm) -> list[str]:
    """Field errors as "Label: message" lines for the Test Mail dialog."""
    lines = []
    for name, errors in form.errors.items():
        field = form.fields.get(name)
        # A hidden field's label means nothing to the admin; its message says it all.
        label = field.label if field is not None and not field.widget.is_hidden else ""
        lines += [f"{label}: {error}" if label else str(error) for error in errors]
    return lines
