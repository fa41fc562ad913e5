"""The Email Log's drill-down filters: the ones the delivery summary links to.

A recipient domain, a kind of error (a failed message's last error, as the known-failure
table words it) and a span of time queued (a bar of the summary's chart). They have no
controls of their own on the filter form: each shows as a line "Filtered to ..." with a
link that removes it, and is kept as a hidden field when the form is submitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django import forms
from django.db.models import QuerySet
from django.http import QueryDict
from django.utils import timezone

from sender.models import OutboxMessage

# What may follow a domain in the log's "To" text (see delivery_summary.DOMAIN_IN_TO).
AFTER_DOMAIN = "([,>; ]|$)"


@dataclass(frozen=True)
class ActiveDrillDown:
    """One drill-down filter in use: what it says, and the query string without it."""

    name: str
    text: str
    remove_query: str
    kept: tuple[tuple[str, str], ...]  # the query's fields, for hidden inputs of the form


def domain_pattern(domain: str) -> str:
    """A regular expression (PostgreSQL's and Python's alike) for ``@domain`` as a whole."""
    escaped = "".join(char if char.isalnum() else "\\" + char for char in domain)
    return "@" + escaped + AFTER_DOMAIN


class LocalDateTimeField(forms.DateTimeField):
    """An ISO date and time; without an offset it is in the console's time zone."""

    def to_python(self, value: object) -> datetime | None:
        if isinstance(value, str) and value.strip():
            try:
                moment = datetime.fromisoformat(value.strip())
            except ValueError as error:
                message = "Enter a date and time such as 2026-03-29T02:00."
                raise forms.ValidationError(message) from error
            if timezone.is_naive(moment):
                moment = timezone.make_aware(moment)
            return moment
        return super().to_python(value if isinstance(value, (str, datetime)) else None)


class DrillDownFilters(forms.Form):
    """Fields of the log's filter form that the summary's links set (see module doc)."""

    domain = forms.CharField(required=False, max_length=253, strip=True)
    error = forms.CharField(required=False, max_length=2000, strip=False)
    since = LocalDateTimeField(required=False)
    until = LocalDateTimeField(required=False)

    DRILL_DOWN = ("domain", "error", "since", "until")

    def clean_domain(self) -> str:
        domain = self.cleaned_data["domain"].lower()
        if any(char in domain for char in ",>; @"):
            raise forms.ValidationError("Enter a domain such as example.com.")
        return domain

    def narrow(self, rows: QuerySet[OutboxMessage]) -> QuerySet[OutboxMessage]:
        """``rows`` with every valid drill-down filter applied (call after is_valid())."""
        values = self.cleaned_data
        if domain := values.get("domain"):
            rows = rows.filter(to__iregex=domain_pattern(domain))
        if values.get("error"):
            rows = rows.filter(last_error=values["error"])
        if since := values.get("since"):
            rows = rows.filter(queued_at__gte=since)
        if until := values.get("until"):
            rows = rows.filter(queued_at__lt=until)
        return rows

    def drill_downs(self, query: QueryDict) -> list[ActiveDrillDown]:
        """The drill-down filters in use, each with the page's query string without it."""
        values = self.cleaned_data
        shown: list[ActiveDrillDown] = []

        def shown_as(text: str, *names: str) -> ActiveDrillDown:
            rest = query.copy()
            for name in (*names, "page"):
                rest.pop(name, None)
            kept = tuple((name, str(query[name])) for name in names if query.get(name))
            return ActiveDrillDown(names[0], text, rest.urlencode(), kept)

        if values.get("domain"):
            shown.append(shown_as(f"To a recipient at {values['domain']}", "domain"))
        if error := values.get("error"):
            shown.append(shown_as(f"Last error: {error[:200]}", "error"))
        since, until = values.get("since"), values.get("until")
        if since or until:
            shown.append(shown_as(queued_between(since, until), "since", "until"))
        return shown


def queued_between(since: datetime | None, until: datetime | None) -> str:
    """ "Queued from ... to ...", in local time."""

    def local(moment: datetime) -> str:
        return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")

    if since and until:
        return f"Queued from {local(since)} to {local(until)}"
    if since:
        return f"Queued from {local(since)}"
    return f"Queued before {local(until)}"  # type: ignore[arg-type]
