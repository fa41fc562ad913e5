"""The Mail Server page's Health check section: the schedule's form and the last runs.

The schedule has its own small form and Save button rather than riding on Save
Settings: it changes when a check runs, not how mail is sent, so it neither bumps the
configuration's version (which reopens every worker's connection) nor asks for the
mail server's secrets again.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib.auth.models import User
from django.utils import timezone

from sender import health_check
from sender.models import HealthCheckSchedule

from . import validators
from .models import AuditEntry, MailServerConfig

HEALTH_CHECK_ACTION = "Saved health check"
PREFIX = "health"  # its fields never share a name or id with the Mail Server form's


class HealthCheckForm(forms.ModelForm):
    """Health check: off, hourly, or daily at HH:MM; to the Admin Mail Address or another."""

    class Meta:
        model = HealthCheckSchedule
        fields = ["frequency", "daily_at", "recipient"]
        labels = {"frequency": "Health check", "daily_at": "Time", "recipient": "Send to"}
        widgets = {
            "frequency": forms.RadioSelect,
            "daily_at": forms.TimeInput(format="%H:%M", attrs={"type": "time"}),
            "recipient": forms.TextInput(
                attrs={"placeholder": "the Admin Mail Address", "autocomplete": "email"}
            ),
        }
        help_texts = {
            "recipient": "Leave empty to send it to the Admin Mail Address.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only "Daily at" needs a time (clean() says so); Off and Hourly ignore it, so an
        # emptied field neither blocks them nor shows a required mark.
        self.fields["daily_at"].required = False
        cast(forms.TimeField, self.fields["daily_at"]).input_formats = ["%H:%M", "%H:%M:%S"]
        self.fields["daily_at"].error_messages["invalid"] = "Enter a time as HH:MM, e.g. 06:30."
        self.fields[
            "daily_at"
        ].help_text = f"In the server's time zone ({timezone.get_current_timezone_name()})."

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}  # Form.clean() returns cleaned_data
        if cleaned.get("daily_at") is None and "daily_at" not in self.errors:
            if cleaned.get("frequency") == HealthCheckSchedule.Frequency.DAILY:
                self.add_error("daily_at", "Enter the time of the daily check, e.g. 06:30.")
            else:
                cleaned["daily_at"] = self.instance.daily_at  # kept for when Daily is chosen
        return cleaned

    def clean_recipient(self) -> str:
        value = (self.cleaned_data.get("recipient") or "").strip()
        return validators.validate_address(value) if value else ""

    def describe(self) -> str:
        """The schedule as the change history names it."""
        schedule = self.instance
        to = schedule.recipient or "the Admin Mail Address"
        return f"Health check {schedule.describe()}, to {to}"


def page_context(form: HealthCheckForm | None = None) -> dict[str, Any]:
    """What the Mail Server page needs to show the section."""
    schedule = HealthCheckSchedule.load()
    runs = health_check.history()
    return {
        "health_form": form or HealthCheckForm(instance=schedule, prefix=PREFIX),
        "health_schedule": schedule,
        "health_runs": runs,
        "health_last": runs[-1] if runs else None,
        "health_next": health_check.next_run(schedule, timezone.now()),
    }


def save_schedule(form: HealthCheckForm, *, user: User, source_ip: str | None) -> str:
    """Save a valid schedule, audit it, queue the next check by it; what to tell the admin."""
    schedule = form.save(commit=False)
    schedule.updated_at = timezone.now()
    schedule.save()
    AuditEntry.objects.create(
        user=user,
        username=user.get_username(),
        source_ip=source_ip,
        version=MailServerConfig.load().version,
        action=HEALTH_CHECK_ACTION,
        changed_fields=[form.describe()],
    )
    slot = health_check.reschedule()
    when = f" The next one runs at {timezone.localtime(slot):%Y-%m-%d %H:%M}." if slot else ""
    return f"Saved: {form.describe()}.{when}"
