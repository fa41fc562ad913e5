"""``/metrics``: the outbox, the workers and the totals, in Prometheus's text format.

Everything is read from the database when Prometheus scrapes, by ``OutboxCollector``:
the web server and the workers are separate processes, so no process's memory holds
the truth. Gauges (messages by status, the oldest waiting message, open incidents,
workers alive) are counted from their rows; counters and the duration histogram are
the running totals the workers keep (``sender/metrics_counters.py``). Nothing that
names a person or a secret is a label: connections, transports, statuses only.

Off (404) unless ``MAILCONFIG_METRICS_TOKEN`` is set; then a scrape must send
``Authorization: Bearer <token>`` (401 without it, 403 with another).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Case, Count, F, Min, QuerySet, TextChoices, When
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .claims import claimable
from .metrics_counters import DURATION_BUCKETS_MS
from .models import (
    Connection,
    DeliveryTotals,
    Incident,
    OutboxMessage,
    Status,
    TokenRequestTotal,
    WorkerHeartbeat,
)

UNKNOWN_TRANSPORT = "unknown"  # a try whose worker stopped before saying how it went


def worker_stale_after() -> timedelta:
    """How long a worker may go unseen before it counts as stopped."""
    return timedelta(seconds=getattr(settings, "MAILCONFIG_WORKER_STALE_AFTER", 120))


class OutboxCollector(Collector):
    """Reads the metrics from the database at each scrape (a few aggregate queries)."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        yield self._messages_by_status()
        yield from self._delivery_totals()
        yield self._oldest_waiting(now)
        yield self._open_incidents()
        yield self._workers_alive(now)
        yield self._token_requests()

    @staticmethod
    def _messages_by_status() -> Metric:
        family = GaugeMetricFamily(
            "mailconfig_messages",
            "Messages in the outbox and the Email Log, by status.",
            labels=["status"],
        )
        return _count_each(family, OutboxMessage.objects.all(), "status", Status)

    @staticmethod
    def _delivery_totals() -> Iterator[Metric]:
        labels = ["connection", "transport"]
        sent = CounterMetricFamily(
            "mailconfig_messages_sent",
            "Messages delivered, by the connection and transport that delivered them.",
            labels=labels,
        )
        failed = CounterMetricFamily(
            "mailconfig_messages_failed",
            "Messages that finally failed (no retry left, or a permanent failure).",
            labels=labels,
        )
        tries = CounterMetricFamily(
            "mailconfig_delivery_tries",
            "Tries at delivering a message, by outcome (sent, transient, permanent).",
            labels=[*labels, "outcome"],
        )
        durations = HistogramMetricFamily(
            "mailconfig_delivery_try_duration_seconds",
            "How long one try at delivering a message took.",
            labels=labels,
        )
        for row in DeliveryTotals.objects.order_by("connection", "transport"):
            values = [row.connection, row.transport or UNKNOWN_TRANSPORT]
            sent.add_metric(values, row.messages_sent)
            failed.add_metric(values, row.messages_failed)
            tries.add_metric([*values, "sent"], row.tries_sent)
            tries.add_metric([*values, "transient"], row.tries_transient)
            tries.add_metric([*values, "permanent"], row.tries_permanent)
            buckets = [
                (str(bound / 1000), getattr(row, f"le_{bound}ms")) for bound in DURATION_BUCKETS_MS
            ]
            durations.add_metric(
                values,
                [*buckets, ("+Inf", row.duration_count)],
                sum_value=row.duration_sum_ms / 1000,
            )
        yield from (sent, failed, tries, durations)

    @staticmethod
    def _oldest_waiting(now: datetime) -> Metric:
        # Waiting: a worker may take it now (Queued or Retrying and due, or Sending with
        # its lease run out); since it became due, not since it was queued.
        since = (
            OutboxMessage.objects.filter(claimable(now))
            .annotate(
                due_since=Case(
                    When(status=Status.SENDING, then=F("lease_until")),
                    default=Coalesce("next_attempt_at", "queued_at"),
                )
            )
            .aggregate(oldest=Min("due_since"))["oldest"]
        )
        age = max(0.0, (now - since).total_seconds()) if since else 0.0
        return GaugeMetricFamily(
            "mailconfig_oldest_waiting_message_age_seconds",
            "How long the message waiting longest for a worker has waited (0: none waits).",
            value=age,
        )

    @staticmethod
    def _open_incidents() -> Metric:
        family = GaugeMetricFamily(
            "mailconfig_incidents_open",
            "Open incidents (mail not being delivered), by connection.",
            labels=["connection"],
        )
        return _count_each(
            family, Incident.objects.filter(closed_at__isnull=True), "connection", Connection
        )

    @staticmethod
    def _workers_alive(now: datetime) -> Metric:
        alive = WorkerHeartbeat.objects.filter(
            last_seen__gte=now - worker_stale_after(), stopped_at__isnull=True
        ).count()
        return GaugeMetricFamily(
            "mailconfig_workers_alive",
            "Mail workers seen within MAILCONFIG_WORKER_STALE_AFTER seconds.",
            value=alive,
        )

    @staticmethod
    def _token_requests() -> Metric:
        family = CounterMetricFamily(
            "mailconfig_token_requests",
            "Requests to a token endpoint, by provider, grant and outcome (issued, failed).",
            labels=["provider", "grant", "outcome"],
        )
        for row in TokenRequestTotal.objects.order_by("provider", "grant", "outcome"):
            family.add_metric([row.provider, row.grant, row.outcome], row.count)
        return family


def exposition() -> bytes:
    """The metrics in Prometheus's text format, read now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OutboxCollector())
    return generate_latest(registry)


def metrics_response(request: HttpRequest) -> HttpResponse:
    """``/metrics``: 404 while no token is configured, 401 without a bearer token, 403
    with a wrong one; 503 "database" when the database does not answer."""
    expected = settings.MAILCONFIG_METRICS_TOKEN
    if not expected:
        return _plain("not found", 404)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        response = _plain("unauthorized", 401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        return _plain("forbidden", 403)
    try:
        body = exposition()
    except DatabaseError:
        return _plain("database", 503)
    response = HttpResponse(body, content_type=CONTENT_TYPE_PLAIN_0_0_4)
    response["Cache-Control"] = "no-store"
    return response


def _plain(text: str, status: int) -> HttpResponse:
    response = HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response


def _count_each(
    family: GaugeMetricFamily, rows: QuerySet[Any], field: str, choices: type[TextChoices]
) -> GaugeMetricFamily:
    """One sample per choice of ``field``: how many ``rows`` have it (0 for none), counted
    with one GROUP BY."""
    counts = dict(
        rows.order_by().values_list(field).annotate(n=Count("pk")).values_list(field, "n")
    )
    for choice in choices:
        family.add_metric([choice.value], counts.get(choice.value, 0))
    return family
