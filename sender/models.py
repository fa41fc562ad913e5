"""The outbox: every message the product sends, its delivery state and each attempt.

The database row is the truth about a message (the Email Log reads it), not the
task that carries it: a task may be lost with a killed worker, the row is not.
The message itself (MIME and envelope) is encrypted at rest and dropped once the
message is delivered or finally failed; the metadata stays for the log.
"""

from __future__ import annotations

import datetime

from django.db import models

from settings_app.fields import EncryptedTextField
from settings_app.models import Connection

__all__ = [
    "Attempt",
    "Connection",
    "DeliveryTotals",
    "HealthCheckRun",
    "HealthCheckSchedule",
    "Incident",
    "OutboxMessage",
    "Status",
    "TokenRequestTotal",
    "WorkerHeartbeat",
]


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    RETRYING = "retrying", "Retrying"
    FAILED = "failed", "Failed"
    # Waiting while sending through its connection is paused (its account was refused):
    # never claimed, no task pending; queued again when sending resumes (sender/pauses.py).
    PAUSED = "paused", "Paused"


class OutboxMessage(models.Model):
    """One queued message: what the Email Log shows, and the encrypted body until it is done."""

    message_id = models.CharField("Message-ID", max_length=255, db_index=True)
    queued_at = models.DateTimeField(auto_now_add=True, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    # When the next attempt may start (retry backoff, Retry-After); null = now.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # While Sending: a worker holds the message until then; after it, another may take it.
    lease_until = models.DateTimeField(null=True, blank=True)
    # While Sending: when the worker claimed it and the connection it goes through, so an
    # attempt its worker abandoned (killed mid-send) is logged as it really was.
    claimed_at = models.DateTimeField(null=True, blank=True)
    sending_through = models.CharField(max_length=10, choices=Connection.choices, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    connection = models.CharField(
        "Connection used", max_length=10, choices=Connection.choices, blank=True
    )

    from_address = models.CharField(max_length=254, blank=True)
    to = models.TextField("To", blank=True)  # comma-separated, for display and search
    cc_count = models.PositiveIntegerField(default=0)
    bcc_count = models.PositiveIntegerField(default=0)
    subject = models.CharField(max_length=998, blank=True)

    # JSON {"from": ..., "recipients": [...], "mime": "<RFC 822 text>"}, encrypted.
    body = EncryptedTextField(blank=True)

    last_error = models.TextField(blank=True)
    last_error_code = models.CharField(max_length=100, blank=True)
    last_error_hint = models.TextField(blank=True)
    # Sent, but the server refused these many recipients (listed on the last attempt).
    refused_count = models.PositiveIntegerField(default=0)

    resend_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="resends"
    )

    class Meta:
        ordering = ["-queued_at", "-pk"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            # The Email Log's delivery summary groups a period's rows by time queued: on
            # PostgreSQL these columns come from the index alone (an index-only scan).
            models.Index(
                fields=["queued_at"],
                include=["status", "connection", "sent_at"],
                name="outbox_summary_queued_idx",
            ),
            # Its failures that matter: the failed messages of a period.
            models.Index(
                fields=["queued_at"],
                condition=models.Q(status="failed"),
                name="outbox_failed_queued_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject or '(no subject)'} to {self.to} [{self.status}]"

    @property
    def partly_refused(self) -> bool:
        """Sent, but the server refused some of its recipients."""
        return self.status == Status.SENT and self.refused_count > 0

    @property
    def status_text(self) -> str:
        """The status as the Email Log says it: "Sent, 1 recipient refused"."""
        if self.partly_refused:
            plural = "s" if self.refused_count > 1 else ""
            return f"Sent, {self.refused_count} recipient{plural} refused"
        return self.get_status_display()

    @property
    def status_style(self) -> str:
        """The status badge's style name (a partly refused message is not plain Sent)."""
        return "refused" if self.partly_refused else self.status


class Attempt(models.Model):
    """One try at delivering a message: when, how, and what the server or API answered."""

    class Outcome(models.TextChoices):
        SENT = "sent", "Sent"
        TRANSIENT = "transient", "Temporary failure"
        PERMANENT = "permanent", "Permanent failure"

    message = models.ForeignKey(OutboxMessage, on_delete=models.CASCADE, related_name="tries")
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    transport = models.CharField(max_length=40)  # "SMTP (XOAUTH2)", "Microsoft Graph", ...
    connection = models.CharField(max_length=10, choices=Connection.choices)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    reply = models.TextField(blank=True)  # server reply or API status, secrets hidden
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=100, blank=True)
    hint = models.TextField(blank=True)
    # Recipients the server or API refused in this try: [{"address": ..., "reply": ...}].
    refused = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["started_at", "pk"]

    def __str__(self) -> str:
        return f"{self.started_at:%Y-%m-%d %H:%M:%S} {self.transport}: {self.outcome}"


class Incident(models.Model):
    """A stretch of time in which mail through one connection was not being delivered.

    Opened by a permanent failure, a grant that needs authorization again, a run of
    temporary failures or a failed health check (``sender/incidents.py``); closed by the
    next successful delivery through that connection. At most one is open per connection.
    One more kind has no connection (``connection`` is empty): mail waited while no worker
    ran (``sender/worker_outage.py``), closed when a worker is seen again.
    """

    class Cause(models.TextChoices):
        PERMANENT = "permanent", "Permanent failure"
        TRANSIENT = "transient", "Repeated temporary failures"
        GRANT = "grant", "Authorization needed again"
        HEALTH_CHECK = "health_check", "Health check failed"
        # Mail waited and no worker ran (sender/worker_outage.py); it has no connection.
        NO_WORKER = "no_worker", "No mail worker running"

    class AlertMail(models.TextChoices):
        SENT = "sent", "Sent"
        FAILED = "failed", "Could not be sent"
        NOT_SENT = "not_sent", "Not sent"

    connection = models.CharField(
        max_length=10, choices=Connection.choices, default=Connection.PRIMARY
    )
    cause = models.CharField(max_length=20, choices=Cause.choices)
    # The first failed attempt the incident counts ("not delivered since"), and when it opened.
    failing_since = models.DateTimeField()
    opened_at = models.DateTimeField(db_index=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.CharField(max_length=200, blank=True)  # "Message #12 delivered"
    # The last error while open: what the banner and the alert say, with its hint.
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=100, blank=True)
    hint = models.TextField(blank=True)
    last_failure_at = models.DateTimeField()
    failures = models.PositiveIntegerField(default=0)
    messages_affected = models.PositiveIntegerField(default=0)
    # What the last failure means (sender/errors.py): no message can go through the
    # connection as it is (no alert is sent through it), and its account was refused
    # (sending through it waits: no sign-in until something changes).
    affects_every_message = models.BooleanField(default=False)
    pauses_sending = models.BooleanField(default=False)
    # The one alert mail of the incident: sent or not, through which connection, and why not.
    alert_mail = models.CharField(
        max_length=10, choices=AlertMail.choices, default=AlertMail.NOT_SENT
    )
    alert_connection = models.CharField(max_length=10, choices=Connection.choices, blank=True)
    alert_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-opened_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection"],
                condition=models.Q(closed_at__isnull=True),
                name="one_open_incident_per_connection",
            )
        ]

    def __str__(self) -> str:
        state = f"closed {self.closed_at:%Y-%m-%d %H:%M}" if self.closed_at else "open"
        return f"{self.get_cause_display()} on {self.connection} since {self.failing_since:%Y-%m-%d %H:%M} ({state})"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class HealthCheckSchedule(models.Model):
    """When the scheduled health check sends a Test Mail, and to whom (one record)."""

    SINGLETON_ID = 1

    class Frequency(models.TextChoices):
        OFF = "off", "Off"
        HOURLY = "hourly", "Hourly"
        DAILY = "daily", "Daily at"

    frequency = models.CharField(max_length=8, choices=Frequency.choices, default=Frequency.OFF)
    daily_at = models.TimeField("Time", default=datetime.time(6, 0))  # TIME_ZONE's local time
    # Empty: the Admin Mail Address.
    recipient = models.CharField("Send to", max_length=254, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Health check: {self.describe()}"

    @classmethod
    def load(cls) -> HealthCheckSchedule:
        """The stored schedule, or an unsaved one that is off."""
        return cls.objects.filter(pk=cls.SINGLETON_ID).first() or cls(pk=cls.SINGLETON_ID)

    def describe(self) -> str:
        """ "off", "hourly" or "daily at 06:00"."""
        if self.frequency == self.Frequency.DAILY:
            return f"daily at {self.daily_at:%H:%M}"
        return str(self.get_frequency_display()).lower()


class HealthCheckRun(models.Model):
    """One scheduled health check through one connection: a real Test Mail and its outcome."""

    started_at = models.DateTimeField(db_index=True)
    # The schedule's slot this run was for (two workers never run one slot twice).
    scheduled_for = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    connection = models.CharField(max_length=10, choices=Connection.choices)
    transport = models.CharField(max_length=40, blank=True)
    recipient = models.CharField(max_length=254, blank=True)
    ok = models.BooleanField(null=True)  # None: running (a scheduled slot claimed by a worker)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=100, blank=True)
    hint = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]
        constraints = [
            # A scheduled slot runs once per connection, however many workers wake for it.
            models.UniqueConstraint(
                fields=["connection", "scheduled_for"], name="one_health_check_run_per_slot"
            )
        ]

    def __str__(self) -> str:
        return f"Health check {self.started_at:%Y-%m-%d %H:%M} {self.connection}: {'ok' if self.ok else 'failed'}"

    @property
    def duration_text(self) -> str:
        ms = self.duration_ms
        return f"{ms / 1000:.1f} s" if ms >= 1000 else f"{ms} ms"


class WorkerHeartbeat(models.Model):
    """One mail worker process as last seen: the console tells from these whether any runs.

    Each ``db_worker`` process writes its own row every few seconds (works on SQLite and
    PostgreSQL, for workers on several machines); a row not seen for
    ``MAILCONFIG_WORKER_STALE_AFTER`` seconds is a worker that stopped.
    """

    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)
    messages_sent = models.PositiveBigIntegerField(default=0)
    stopped_at = models.DateTimeField(null=True, blank=True)  # a graceful stop says so

    class Meta:
        ordering = ["-last_seen", "-pk"]

    def __str__(self) -> str:
        return f"Worker {self.host}:{self.pid} (last seen {self.last_seen:%Y-%m-%d %H:%M:%S})"


class DeliveryTotals(models.Model):
    """Running totals of delivery through one connection and transport, for ``/metrics``.

    Only ever incremented (``F() + n``), by the worker in the transaction that records the
    outcomes (``sender/metrics_counters.py``): the totals survive restarts and the Email
    Log's retention purge, and every process reads the same numbers. Attempt durations
    are a histogram with fixed buckets: ``le_<n>ms`` counts the tries that took at most
    n ms (cumulative, as Prometheus expects); ``duration_count`` is the +Inf bucket.
    """

    connection = models.CharField(max_length=10, choices=Connection.choices)
    transport = models.CharField(max_length=40, blank=True)  # "" when not known
    messages_sent = models.PositiveBigIntegerField(default=0)
    messages_failed = models.PositiveBigIntegerField(default=0)
    tries_sent = models.PositiveBigIntegerField(default=0)
    tries_transient = models.PositiveBigIntegerField(default=0)
    tries_permanent = models.PositiveBigIntegerField(default=0)
    duration_count = models.PositiveBigIntegerField(default=0)
    duration_sum_ms = models.PositiveBigIntegerField(default=0)
    le_100ms = models.PositiveBigIntegerField(default=0)
    le_250ms = models.PositiveBigIntegerField(default=0)
    le_500ms = models.PositiveBigIntegerField(default=0)
    le_1000ms = models.PositiveBigIntegerField(default=0)
    le_2500ms = models.PositiveBigIntegerField(default=0)
    le_5000ms = models.PositiveBigIntegerField(default=0)
    le_10000ms = models.PositiveBigIntegerField(default=0)
    le_30000ms = models.PositiveBigIntegerField(default=0)
    le_60000ms = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "transport"], name="one_delivery_totals_per_transport"
            )
        ]

    def __str__(self) -> str:
        return f"Totals {self.connection} {self.transport or '(unknown)'}"


class TokenRequestTotal(models.Model):
    """How many requests this installation made to a token endpoint, for ``/metrics``.

    Counted by whichever process made the request (a worker sending, the web server for
    Test Mail), only ever incremented.
    """

    provider = models.CharField(max_length=20)  # "microsoft", "google"
    grant = models.CharField(max_length=30)  # "client_credentials", "service_account", ...
    outcome = models.CharField(max_length=10)  # "issued" or "failed"
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "grant", "outcome"], name="one_token_request_total_per_kind"
            )
        ]

    def __str__(self) -> str:
        return f"Token requests {self.provider} {self.grant} {self.outcome}: {self.count}"
