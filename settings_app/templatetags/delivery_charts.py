"""Template tags that draw the delivery summary's charts (settings_app/charts.py) from its buckets."""

from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from settings_app import charts
from settings_app.delivery_summary import Bucket, Summary

register = template.Library()

OUTCOMES = (
    charts.Series("sent", "Sent", "chart-sent"),
    charts.Series("retrying", "Retrying", "chart-retrying"),
    charts.Series("failed", "Failed", "chart-failed"),
    charts.Series("waiting", "Waiting", "chart-waiting"),
)
DELIVERY_TIMES = (
    charts.Series("p50", "Median (p50)", "chart-p50"),
    charts.Series("p95", "95th percentile (p95)", "chart-p95"),
)
CONNECTIONS = (
    charts.Series("primary", "Primary connection", "chart-primary"),
    charts.Series("backup", "Backup connection", "chart-backup"),
)


def _columns(
    buckets: list[Bucket], series: tuple[charts.Series, ...], tooltip
) -> list[charts.Column]:
    return [
        charts.Column(
            label=bucket.label,
            tooltip=f"{bucket.name}: {tooltip(bucket)}",
            values={line.key: getattr(bucket, line.key) for line in series},
        )
        for bucket in buckets
    ]


def _per(summary: Summary) -> str:
    return summary.period.unit


@register.simple_tag
def outcome_chart(summary: Summary) -> SafeString:
    """Messages queued per bucket, stacked by what became of them."""

    def tooltip(bucket: Bucket) -> str:
        return ", ".join(f"{getattr(bucket, s.key)} {s.label.lower()}" for s in OUTCOMES)

    return charts.stacked_bars(
        "chart-outcomes",
        f"Messages queued per {_per(summary)}, last {summary.period.label}, by outcome",
        f"{summary.queued} messages: {summary.sent} sent, {summary.retrying} retrying, "
        f"{summary.failed} failed, {summary.waiting} waiting. The numbers are in the table below.",
        _columns(summary.buckets, OUTCOMES, tooltip),
        OUTCOMES,
    )


@register.simple_tag
def delivery_time_chart(summary: Summary) -> SafeString:
    """p50 and p95 of the time from queued to sent, per bucket."""

    def tooltip(bucket: Bucket) -> str:
        if bucket.p50 is None:
            return "nothing sent"
        return f"p50 {charts.duration_text(bucket.p50)}, p95 {charts.duration_text(bucket.p95)}"

    return charts.line_chart(
        "chart-delivery-time",
        f"Delivery time from queued to sent per {_per(summary)}, last {summary.period.label}",
        f"Over the period: median {charts.duration_text(summary.p50)}, 95th percentile "
        f"{charts.duration_text(summary.p95)}. The numbers are in the table below.",
        _columns(summary.buckets, DELIVERY_TIMES, tooltip),
        DELIVERY_TIMES,
    )


@register.simple_tag
def connection_chart(summary: Summary) -> SafeString:
    """Sent messages per bucket, by the connection that delivered them."""

    def tooltip(bucket: Bucket) -> str:
        return f"{bucket.primary} through the primary, {bucket.backup} through the backup"

    return charts.stacked_bars(
        "chart-connections",
        f"Messages sent per {_per(summary)} by connection, last {summary.period.label}",
        f"{summary.primary} through the primary connection, {summary.backup} through the "
        "backup. The numbers are in the table below.",
        _columns(summary.buckets, CONNECTIONS, tooltip),
        CONNECTIONS,
    )


@register.simple_tag
def delivery_sparkline(buckets: list[Bucket]) -> SafeString:
    """The last 24 hours as a word-sized chart of sent and failed messages."""
    sent = sum(bucket.sent for bucket in buckets)
    failed = sum(bucket.failed for bucket in buckets)
    columns = _columns(buckets, OUTCOMES[:3], lambda bucket: "")
    return charts.sparkline(
        f"Last 24 hours, hour by hour: {sent} sent, {failed} failed", columns, OUTCOMES[:3]
    )


@register.filter
def duration(seconds: float | None) -> str:
    """A delivery time in seconds as text (0.4 s, 3.5 min)."""
    return charts.duration_text(seconds)


@register.filter
def age(delta) -> str:
    """How long ago, in the largest unit that fits: 40 s, 12 min, 3.5 h, 2 days."""
    if delta is None:
        return "—"
    seconds = delta.total_seconds()
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    return charts.duration_text(max(seconds, 0))
