"""Admin > General Settings > Email Log: every message the product queued, its attempts, Resend.

The outbox rows (``sender.models``) are the truth; this module only reads them, and
asks the outbox (``sender.outbox``) to queue a message again. Views never decrypt a
message's content: whether it is still kept is read as "the column is not empty".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import User
from django.core.paginator import Page, Paginator
from django.db import transaction
from django.db.models import BooleanField, Count, ExpressionWrapper, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from mailconfig.client_address import client_ip
from mailconfig.signed_in import SignedInRequest
from sender import heartbeats, outbox, pauses
from sender.models import Attempt, Incident, OutboxMessage, Status

from .delivery_summary import PERIODS as SUMMARY_PERIODS
from .delivery_summary import summarise as summarise_delivery
from .log_drilldown import DrillDownFilters
from .models import AuditEntry, MailServerConfig

PAGE_SIZE = 50
INCIDENTS_SHOWN = 20
LISTED_RECIPIENTS = 3  # the list shows the first few To addresses, then "+N more"
IN_FLIGHT = (Status.QUEUED, Status.SENDING, Status.RETRYING, Status.PAUSED)
WAITING = "waiting"  # the status filter's name for "any of IN_FLIGHT"
REFUSED = "refused"  # ... and for "Sent, but some recipients refused"

# Period filter: key in the URL -> (label, how far back from now; None = any time).
PERIODS: dict[str, tuple[str, timedelta | None]] = {
    "": ("Any time", None),
    "1h": ("Last hour", timedelta(hours=1)),
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
}

SENT_NOT_KEPT = "The content of delivered messages is not kept, for privacy."
# A second copy of one message within this many seconds needs its own confirmation: two
# presses, or two admins at once, are far likelier than a wish for two copies.
RECENT_COPY_SECONDS = 10


class LogFilterForm(DrillDownFilters):
    """The log's filters, read from the query string. An invalid value (a search over 200
    characters, an unknown status) shows its field error and no rows: the whole log in its
    place would look like the answer to the search."""

    status = forms.ChoiceField(
        choices=[
            ("", "All statuses"),
            *Status.choices,
            (WAITING, "Waiting (Queued, Sending, Retrying or Paused)"),
            (REFUSED, "Sent, some recipients refused"),
        ],
        required=False,
        label="Status",
    )
    period = forms.ChoiceField(
        choices=[(key, label) for key, (label, _) in PERIODS.items()],
        required=False,
        label="Queued in",
    )
    q = forms.CharField(
        required=False, max_length=200, strip=True, label="Recipient, subject or Message-ID"
    )

    def apply(self, rows: QuerySet[OutboxMessage], now: datetime) -> QuerySet[OutboxMessage]:
        """The rows that match every filter; none when a filter is not valid."""
        if not self.is_valid():
            return rows.none()
        values = self.cleaned_data
        if values.get("status") == WAITING:
            rows = rows.filter(status__in=IN_FLIGHT)
        elif values.get("status") == REFUSED:
            rows = rows.filter(status=Status.SENT, refused_count__gt=0)
        elif values.get("status"):
            rows = rows.filter(status=values["status"])
        span = PERIODS[values["period"]][1] if values.get("period") else None
        if span is not None:
            rows = rows.filter(queued_at__gte=now - span)
        if text := values.get("q"):
            rows = rows.filter(
                Q(to__icontains=text) | Q(subject__icontains=text) | Q(message_id__icontains=text)
            )
        return self.narrow(rows)  # domain, error and time span: the summary's links

    @property
    def active(self) -> bool:
        """Whether any filter narrows the list (to say "no match" rather than "no mail")."""
        return bool(self.errors) or any(self.cleaned_data.get(name) for name in self.fields)


def log_rows() -> QuerySet[OutboxMessage]:
    """Outbox rows for display: the encrypted content is never loaded, only whether it exists."""
    return OutboxMessage.objects.defer("body").annotate(
        body_kept=ExpressionWrapper(~Q(body=""), output_field=BooleanField())
    )


@require_GET
def email_log(request: HttpRequest) -> HttpResponse:
    """The list: one row per message, newest first, filtered, searched and paginated."""
    now = timezone.now()
    filters = LogFilterForm(request.GET)
    rows = filters.apply(log_rows(), now)
    page: Page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    for row in page.object_list:
        addresses = [address.strip() for address in row.to.split(",") if address.strip()]
        row.first_recipients = addresses[:LISTED_RECIPIENTS]
        row.more_recipients = len(addresses[LISTED_RECIPIENTS:])
    query = request.GET.copy()
    query.pop("page", None)
    summary_query = query.copy()
    summary_query.pop("summary", None)
    context = {
        "filters": filters,
        "page": page,
        "query": query.urlencode(),
        "retention_days": settings.MAILCONFIG_LOG_RETENTION_DAYS,
        "summary": delivery_summary(now),
        "drill_downs": filters.drill_downs(request.GET),
        "overview": summarise_delivery(request.GET.get("summary", ""), now),
        "periods": SUMMARY_PERIODS,
        "summary_query": summary_query.urlencode(),
        "incidents": Incident.objects.all()[:INCIDENTS_SHOWN],
        "paused_reason": _paused_reason(page.object_list),
        **workers_context(now),
    }
    return render(request, "settings_app/email_log.html", context)


def workers_context(now: datetime) -> dict[str, object]:
    """The running mail workers and their hosts, or when one was last seen."""
    workers = heartbeats.running(now)
    for worker in workers:  # workers beat every few seconds: "12 s ago", not "0 minutes ago"
        seconds = max(0, int((now - worker.last_seen).total_seconds()))
        worker.seen_seconds_ago = seconds  # type: ignore[attr-defined]  # for _workers.html
    return {
        "workers": workers,
        "worker_hosts": sorted({worker.host for worker in workers}),
        "worker_last_seen": None if workers else heartbeats.last_seen(),
    }


def _paused_reason(rows: list[OutboxMessage]) -> str:
    # Read only when a Paused message is shown: one reason for all (they wait on the same).
    return pauses.waiting_reason() if any(row.status == Status.PAUSED for row in rows) else ""


@require_GET
def email_log_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One message: its facts, every attempt, and the Resend buttons (or why they are off)."""
    row = log_rows().select_related("resend_of").filter(pk=pk).first()
    if row is None:
        return render(
            request,
            "settings_app/email_log_missing.html",
            {"retention_days": settings.MAILCONFIG_LOG_RETENTION_DAYS},
            status=404,
        )
    body_kept: bool = row.body_kept  # type: ignore[attr-defined]  # annotated by log_rows()
    attempts = [_with_duration_text(attempt) for attempt in row.tries.all()]
    # The try that sent the message says whom the server refused.
    sent = [attempt for attempt in attempts if attempt.outcome == Attempt.Outcome.SENT]
    refused = sent[-1].refused if sent and row.partly_refused else []
    context = {
        "row": row,
        "attempts": attempts,
        "refused": refused,
        "refused_resend_allowed": bool(refused) and body_kept,
        "resends": row.resends.order_by("queued_at", "pk").only("pk", "queued_at", "status"),
        "requeue_allowed": row.status == Status.FAILED and body_kept,
        "copy_allowed": body_kept,
        "not_kept_reason": "" if body_kept else not_kept_reason(row),
        "in_flight": row.status in IN_FLIGHT,
        "paused_reason": _paused_reason([row]),
        # The confirm step of Resend a copy ("again": a copy was queued moments ago).
        "confirm_copy": request.GET.get("confirm", "") if body_kept else "",
    }
    return render(request, "settings_app/email_log_detail.html", context)


def _with_duration_text(attempt: Attempt) -> Attempt:
    ms = attempt.duration_ms
    attempt.duration_text = f"{ms / 1000:.1f} s" if ms >= 1000 else f"{ms} ms"  # type: ignore[attr-defined]
    return attempt


def not_kept_reason(row: OutboxMessage) -> str:
    """One line saying why a message's content is gone, so Resend is off."""
    if row.status == Status.SENT:
        return SENT_NOT_KEPT
    if row.status == Status.FAILED:
        days = settings.MAILCONFIG_FAILED_BODY_DAYS
        return f"The content of failed messages is kept for {days} days only, for privacy; this one's has been deleted."
    return "The content of this message is no longer kept."


class ResendRefused(Exception):
    """Resend is not possible for this message now; the text says why, for the admin."""


class RecentCopy(ResendRefused):
    """A copy of this message was queued moments ago; another needs its own confirmation."""


@require_POST
def email_log_resend(request: SignedInRequest, pk: int) -> HttpResponse:
    """Resend a Failed message as it was ("requeue"), or queue a copy of any message ("copy")."""
    action = request.POST.get("action", "")
    if action not in ("requeue", "copy", "refused"):
        messages.error(request, "Nothing was sent: unknown Resend action.")
        return redirect("settings_app:email_log_detail", pk=pk)
    if action == "copy" and request.POST.get("confirmed") != "yes":
        # The button opens the confirm step; only its own button sends.
        return redirect(reverse("settings_app:email_log_detail", args=[pk]) + "?confirm=copy")
    try:
        queued = resend(
            pk,
            action=action,
            user=request.user,
            source_ip=client_ip(request),
            again=request.POST.get("again") == "yes",
        )
    except OutboxMessage.DoesNotExist:
        messages.error(
            request,
            f"Nothing was sent: message #{pk} is no longer in the Email Log (messages are kept "
            f"for {settings.MAILCONFIG_LOG_RETENTION_DAYS} days).",
        )
        return redirect("settings_app:email_log")
    except RecentCopy as refused:
        messages.error(request, f"Nothing was sent. {refused}")
        return redirect(reverse("settings_app:email_log_detail", args=[pk]) + "?confirm=again")
    except ResendRefused as refused:
        messages.error(request, f"Nothing was sent. {refused}")
        return redirect("settings_app:email_log_detail", pk=pk)
    if queued.pk == pk:
        messages.success(request, f"Message #{pk} is queued again, with the same Message-ID.")
    elif action == "refused":
        messages.success(
            request,
            f"Message #{pk} is queued again as message #{queued.pk}, to the refused "
            "recipients only, with the same Message-ID.",
        )
    else:
        messages.success(
            request, f"A copy of message #{pk} is queued as message #{queued.pk}, shown below."
        )
    return redirect("settings_app:email_log_detail", pk=queued.pk)


def resend(
    pk: int, *, action: str, user: User, source_ip: str | None, again: bool = False
) -> OutboxMessage:
    """Queue message ``pk`` again ("requeue"), a copy of it ("copy"), or the same message to
    the recipients the server refused ("refused"); audit it; return the row that will go.

    The row is locked so two admins pressing Resend at once cannot send a Failed message
    twice, nor queue two copies within ``RECENT_COPY_SECONDS`` unless ``again`` confirms it
    (the lock makes the second press wait, then see the first one's copy).
    """
    with transaction.atomic():
        row = OutboxMessage.objects.select_for_update().get(pk=pk)
        recent = timezone.now() - timedelta(seconds=RECENT_COPY_SECONDS)
        latest = row.resends.filter(queued_at__gte=recent).order_by("-pk").first()
        if action == "copy" and not again and latest is not None:
            raise RecentCopy(
                f"A copy of message #{pk} was queued moments ago (#{latest.pk}). Confirm "
                "below to send one more."
            )
        if not outbox.has_body(row):
            raise ResendRefused(not_kept_reason(row))
        if action == "requeue" and row.status != Status.FAILED:
            raise ResendRefused(
                f"Message #{pk} is {row.get_status_display()}, not Failed: only a failed "
                "message is resent as it was. Use Resend a copy to send it once more."
            )
        try:
            if action == "copy":
                queued = outbox.resend_copy(row)
                audit, what = "Resent a copy of a message", f"queued as #{queued.pk}"
            elif action == "refused":
                queued = outbox.resend_to_refused(row)
                audit = "Resent a message to its refused recipients"
                what = f"to {queued.to}, queued as #{queued.pk}"
            else:
                outbox.requeue(row)
                queued, audit, what = row, "Resent a failed message", "same Message-ID"
        except (outbox.BodyGone, ValueError) as refused:  # the outbox's own last checks
            raise ResendRefused(str(refused)) from refused
        AuditEntry.objects.create(
            user=user,
            username=user.get_username(),
            source_ip=source_ip,
            version=MailServerConfig.load().version,
            action=audit,
            changed_fields=[f"Email Log #{pk} to {row.to or 'no recipient'}, {what}"],
        )
    return queued


@dataclass(frozen=True)
class DeliverySummary:
    """The Mail Server page's one line about delivery."""

    queued: int
    sent_24h: int
    failed_24h: int
    refused_24h: int = 0  # of the sent ones, those some recipients refused


def delivery_summary(now: datetime | None = None) -> DeliverySummary:
    """Messages waiting now, and of those queued in the last 24 hours how many went or failed.

    Counting by time queued makes each figure match the Email Log filtered the same way.
    """
    since = (now or timezone.now()) - timedelta(hours=24)
    counts = OutboxMessage.objects.aggregate(
        queued=Count("pk", filter=Q(status__in=IN_FLIGHT)),
        sent=Count("pk", filter=Q(status=Status.SENT, queued_at__gte=since)),
        failed=Count("pk", filter=Q(status=Status.FAILED, queued_at__gte=since)),
        refused=Count(
            "pk", filter=Q(status=Status.SENT, refused_count__gt=0, queued_at__gte=since)
        ),
    )
    return DeliverySummary(
        queued=counts["queued"],
        sent_24h=counts["sent"],
        failed_24h=counts["failed"],
        refused_24h=counts["refused"],
    )
