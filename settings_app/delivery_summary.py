"""The Email Log's delivery summary: what the outbox did over a period, from the database's aggregates.

Messages are counted by the time they were queued (as the log's filters count them), in
buckets of local hours or local days of ``TIME_ZONE``. The buckets are made in local
time and the database groups with ``Trunc(..., tzinfo=)``, so a daylight-saving change
neither doubles nor drops a bucket: the hour that repeats in autumn is one bucket of two
hours, the hour that is skipped in spring is not there. Delivery time (queued to sent)
percentiles come from ``percentile_cont`` on PostgreSQL and from the same interpolation
in Python elsewhere. This module only reads; drawing is ``settings_app/charts.py``.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from django.db import connection as db_connection
from django.db.models import (
    Aggregate,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    Max,
    Q,
    QuerySet,
)
from django.db.models.functions import Trunc
from django.utils import timezone

from sender.models import Incident, OutboxMessage, Status

from .models import Connection

WAITING_STATUSES = (Status.QUEUED, Status.SENDING)  # not tried yet, or being tried now
IN_FLIGHT = (Status.QUEUED, Status.SENDING, Status.RETRYING)
TOP_FAILURES = 5
PERCENTILES = {"p50": 0.5, "p95": 0.95}
# A recipient's domain in the log's "To" text: what follows "@" up to the next separator.
DOMAIN_IN_TO = re.compile(r"@([^,>; ]+)")


@dataclass(frozen=True)
class Period:
    """A period the summary covers: its key in the URL, its label and its buckets."""

    key: str
    label: str
    unit: str  # "hour" or "day": the bucket
    count: int  # buckets in the period


PERIODS = {
    period.key: period
    for period in (
        Period("24h", "24 hours", "hour", 24),
        Period("7d", "7 days", "day", 7),
        Period("30d", "30 days", "day", 30),
    )
}
DEFAULT_PERIOD = "24h"


@dataclass
class Bucket:
    """One hour or day: its messages by status, who delivered them, and how fast."""

    start: datetime
    end: datetime
    unit: str  # "hour" or "day"
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    waiting: int = 0
    primary: int = 0  # sent through the primary connection
    backup: int = 0
    p50: float | None = None  # seconds from queued to sent
    p95: float | None = None

    @property
    def total(self) -> int:
        return self.sent + self.retrying + self.failed + self.waiting

    @cached_property
    def label(self) -> str:
        """Short, for an axis: "14:00" or "Dec 4"."""
        local = timezone.localtime(self.start)
        return f"{local:%H:%M}" if self.unit == "hour" else f"{local:%b} {local.day}"

    @cached_property
    def name(self) -> str:
        """Whole, for a tooltip or a table: "Thu Dec 4, 14:00 to 15:00" or "Thu Dec 4"."""
        local, end = timezone.localtime(self.start), timezone.localtime(self.end)
        day = f"{local:%a %b} {local.day}"
        return f"{day}, {local:%H:%M}\u2013{end:%H:%M}" if self.unit == "hour" else day

    @property
    def query(self) -> str:
        """The log's filter for the messages queued in this bucket."""
        return urlencode({"since": self.start.isoformat(), "until": self.end.isoformat()})


@dataclass(frozen=True)
class ErrorGroup:
    """Failed messages whose last error is one kind: the known failure's message and hint."""

    error: str
    hint: str
    code: str
    messages: int


@dataclass
class Summary:
    """Everything the summary shows for one period, read in a handful of queries."""

    period: Period
    now: datetime
    buckets: list[Bucket]
    p50: float | None = None
    p95: float | None = None
    waiting_now: int = 0
    oldest_waiting: OutboxMessage | None = None
    open_incidents: int = 0
    top_domains: list[tuple[str, int]] = field(default_factory=list)
    top_errors: list[ErrorGroup] = field(default_factory=list)

    @property
    def start(self) -> datetime:
        return self.buckets[0].start

    @property
    def since_query(self) -> str:
        """The log's filter for the messages queued in the period."""
        return urlencode({"since": self.start.isoformat()})

    def total(self, name: str) -> int:
        return sum(getattr(bucket, name) for bucket in self.buckets)

    @property
    def sent(self) -> int:
        return self.total("sent")

    @property
    def failed(self) -> int:
        return self.total("failed")

    @property
    def retrying(self) -> int:
        return self.total("retrying")

    @property
    def waiting(self) -> int:
        return self.total("waiting")

    @property
    def primary(self) -> int:
        return self.total("primary")

    @property
    def backup(self) -> int:
        return self.total("backup")

    @property
    def queued(self) -> int:
        return self.total("total")

    @property
    def failure_rate(self) -> float | None:
        """Failed out of the finished (sent or failed) messages, in percent; None if none."""
        finished = self.sent + self.failed
        return 100 * self.failed / finished if finished else None

    @property
    def oldest_waiting_age(self) -> timedelta | None:
        return self.now - self.oldest_waiting.queued_at if self.oldest_waiting else None


class PercentilesCont(Aggregate):
    """PostgreSQL's ``percentile_cont(ARRAY[...]) WITHIN GROUP (ORDER BY seconds)``: all the
    fractions from one sort of the group."""

    function = "PERCENTILE_CONT"
    template = (
        "%(function)s(ARRAY[%(fractions)s]::float8[]) WITHIN GROUP "
        "(ORDER BY EXTRACT(EPOCH FROM %(expressions)s))"
    )

    def __init__(self, expression: object, fractions: list[float], **extra: Any) -> None:
        from django.contrib.postgres.fields import ArrayField  # PostgreSQL only

        listed = ", ".join(str(float(fraction)) for fraction in fractions)
        super().__init__(
            expression, fractions=listed, output_field=ArrayField(FloatField()), **extra
        )


def percentile(values: list[float], fraction: float) -> float | None:
    """The ``fraction`` percentile of ``values`` with linear interpolation (as percentile_cont)."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def bucket_starts(period: Period, now: datetime, zone: tzinfo) -> list[datetime]:
    """The local start of each bucket of ``period`` ending with the one ``now`` is in.

    Hours step back in real time and are truncated on the local clock, so the autumn
    hour that repeats yields one bucket and the spring hour that is skipped yields none;
    days are local calendar days (23 or 25 hours long across a change).
    """
    local_now = timezone.localtime(now, zone)
    if period.unit == "day":
        today = local_now.date()
        days = [today - timedelta(days=back) for back in range(period.count - 1, -1, -1)]
        return [datetime.combine(day, time(), tzinfo=zone) for day in days]
    current = local_now.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    starts: dict[datetime, datetime] = {}
    for back in range(period.count - 1, -1, -1):
        local = (current - timedelta(hours=back)).astimezone(zone)
        local = local.replace(minute=0, second=0, microsecond=0)
        starts.setdefault(local.replace(tzinfo=None, fold=0), local.replace(fold=0))
    return list(starts.values())


def wall_clock(moment: datetime, zone: tzinfo) -> datetime:
    """A bucket's key: its local time without zone (how the database's Trunc names it)."""
    return moment.astimezone(zone).replace(tzinfo=None, fold=0)


def summarise(period_key: str, now: datetime | None = None) -> Summary:
    """The summary of ``period_key`` (see PERIODS; an unknown key means the default)."""
    summary = _counted(PERIODS.get(period_key) or PERIODS[DEFAULT_PERIOD], now)
    _read_queue(summary)
    _read_failures(summary, OutboxMessage.objects.filter(queued_at__gte=summary.start))
    return summary


def last_day(now: datetime | None = None) -> list[Bucket]:
    """The last 24 hours, hour by hour (the Mail Server page's sparkline)."""
    return _counted(PERIODS["24h"], now, percentiles=False).buckets


def _counted(period: Period, now: datetime | None, *, percentiles: bool = True) -> Summary:
    now = now or timezone.now()
    zone = timezone.get_current_timezone()
    starts = bucket_starts(period, now, zone)
    buckets = [
        Bucket(start=start, end=following, unit=period.unit)
        for start, following in zip(starts, [*starts[1:], now], strict=True)
    ]
    summary = Summary(period=period, now=now, buckets=buckets)
    in_period = OutboxMessage.objects.filter(queued_at__gte=summary.start)
    _count_buckets(summary, in_period, zone, percentiles)
    return summary


def _count_buckets(
    summary: Summary, in_period: QuerySet[OutboxMessage], zone: tzinfo, percentiles: bool
) -> None:
    by_key = {wall_clock(bucket.start, zone): bucket for bucket in summary.buckets}
    unit = summary.period.unit
    sent = Q(status=Status.SENT)
    figures: dict[str, Aggregate] = {
        "sent": Count("pk", filter=sent),
        "retrying": Count("pk", filter=Q(status=Status.RETRYING)),
        "failed": Count("pk", filter=Q(status=Status.FAILED)),
        "waiting": Count("pk", filter=Q(status__in=WAITING_STATUSES)),
        "primary": Count("pk", filter=sent & Q(connection=Connection.PRIMARY)),
        "backup": Count("pk", filter=sent & Q(connection=Connection.BACKUP)),
    }
    on_postgresql = db_connection.vendor == "postgresql"
    delivered = sent & Q(sent_at__isnull=False)
    took = ExpressionWrapper(F("sent_at") - F("queued_at"), output_field=DurationField())
    if on_postgresql and percentiles:
        figures["percentiles"] = PercentilesCont(took, list(PERCENTILES.values()), filter=delivered)
    grouped = (
        in_period.annotate(bucket=Trunc("queued_at", unit, tzinfo=zone))
        .values("bucket")
        .annotate(**figures)
        .order_by()
    )
    for row in grouped:
        bucket = by_key.get(wall_clock(row.pop("bucket"), zone))
        if bucket is None:  # queued after "now" (a message just arriving)
            continue
        for name, value in zip(PERCENTILES, row.pop("percentiles", None) or (), strict=False):
            setattr(bucket, name, value)
        for name, value in row.items():
            setattr(bucket, name, value)
    if not percentiles:
        return
    if on_postgresql:
        overall = in_period.aggregate(
            percentiles=PercentilesCont(took, list(PERCENTILES.values()), filter=delivered)
        )["percentiles"]
        summary.p50, summary.p95 = overall or (None, None)
        return
    # Elsewhere (SQLite): the same interpolation in Python, from each bucket's durations.
    durations: dict[datetime, list[float]] = defaultdict(list)
    rows = (
        in_period.filter(delivered)
        .annotate(bucket=Trunc("queued_at", unit, tzinfo=zone))
        .values_list("bucket", "queued_at", "sent_at")
        .order_by()
    )
    every: list[float] = []
    for bucket_start, queued_at, sent_at in rows:
        key = wall_clock(bucket_start, zone)
        if key in by_key and sent_at is not None:  # always set: delivered rows only
            seconds = (sent_at - queued_at).total_seconds()
            durations[key].append(seconds)
            every.append(seconds)
    for key, bucket in by_key.items():
        bucket.p50, bucket.p95 = (percentile(durations[key], f) for f in PERCENTILES.values())
    summary.p50, summary.p95 = (percentile(every, f) for f in PERCENTILES.values())


def _read_queue(summary: Summary) -> None:
    waiting = OutboxMessage.objects.filter(status__in=IN_FLIGHT)
    summary.waiting_now = waiting.count()
    if summary.waiting_now:
        summary.oldest_waiting = (
            waiting.order_by("queued_at", "pk").only("pk", "queued_at", "subject").first()
        )
    summary.open_incidents = Incident.objects.filter(closed_at__isnull=True).count()


def domains_in(to: str) -> set[str]:
    """The recipient domains named in a message's "To" text, lower case."""
    return {domain.lower().rstrip(".") for domain in DOMAIN_IN_TO.findall(to)}


def _read_failures(summary: Summary, in_period: QuerySet[OutboxMessage]) -> None:
    failed = in_period.filter(status=Status.FAILED)
    # The database groups identical recipient lists; a message counts once per domain.
    domains: Counter[str] = Counter()
    for to, messages in failed.values_list("to").annotate(n=Count("pk")).order_by():
        for domain in domains_in(to):
            domains[domain] += messages
    summary.top_domains = sorted(domains.items(), key=lambda item: (-item[1], item[0]))[
        :TOP_FAILURES
    ]
    groups = (
        failed.values("last_error", "last_error_hint")
        .annotate(messages=Count("pk"), code=Max("last_error_code"), latest=Max("queued_at"))
        .order_by("-messages", "-latest")[:TOP_FAILURES]
    )
    summary.top_errors = [
        ErrorGroup(
            error=group["last_error"],
            hint=group["last_error_hint"],
            code=group["code"],
            messages=group["messages"],
        )
        for group in groups
    ]
