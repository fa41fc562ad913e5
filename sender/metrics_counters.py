"""The running totals behind ``/metrics``: delivery outcomes and token requests.

The web server and the workers are separate processes (on several machines, maybe),
so a counter in one process's memory would say nothing of the others and restart at
zero. The totals live in the database instead, one row per label set, and are only
ever incremented with ``F() + n``: the worker counts outcomes inside the transaction
that records them (so a rolled-back outcome is not counted and a committed one is,
exactly once), and the scrape reads the rows (``sender/metrics.py``). The Email Log's
retention purge deletes messages and attempts, never these rows.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, Model

from .errors import MailError
from .models import Attempt, DeliveryTotals, TokenRequestTotal

logger = logging.getLogger(__name__)

# Upper bounds of the attempt-duration histogram's buckets, in ms (fields le_<n>ms).
DURATION_BUCKETS_MS = (100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)

MESSAGE_SENT = "sent"
MESSAGE_FAILED = "failed"

_TRY_FIELDS: dict[str, str] = {
    Attempt.Outcome.SENT: "tries_sent",
    Attempt.Outcome.TRANSIENT: "tries_transient",
    Attempt.Outcome.PERMANENT: "tries_permanent",
}
_MESSAGE_FIELDS = {MESSAGE_SENT: "messages_sent", MESSAGE_FAILED: "messages_failed"}


@dataclass(frozen=True)
class DeliveryOutcome:
    """One try at a message, as the totals count it.

    ``outcome`` is the try's (``Attempt.Outcome``); ``message`` is "sent" or "failed"
    when this try settled the message, "" when the message is retried (or another try
    of the same attempt settles it); ``duration_ms`` is None when not measured (a
    worker stopped mid-send).
    """

    connection: str
    transport: str
    outcome: str
    message: str = ""
    duration_ms: int | None = None


def count_outcomes(outcomes: Iterable[DeliveryOutcome]) -> None:
    """Add the outcomes to the running totals: one UPDATE per connection and transport.

    Call it inside the transaction that records the outcomes, last (it locks the
    totals' rows until the commit): a batch of any size costs one statement per
    transport it went through, and a first outcome for a transport one INSERT more.
    """
    increments: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for item in outcomes:
        fields = increments[(item.connection, item.transport)]
        fields[_TRY_FIELDS[item.outcome]] += 1
        if item.message:
            fields[_MESSAGE_FIELDS[item.message]] += 1
        if item.duration_ms is not None:
            fields["duration_count"] += 1
            fields["duration_sum_ms"] += item.duration_ms
            for bound in DURATION_BUCKETS_MS:
                if item.duration_ms <= bound:
                    fields[f"le_{bound}ms"] += 1
    # Always in the same order, so two workers' transactions never wait on each other
    # in a cycle.
    for (connection, transport), fields in sorted(increments.items()):
        _increment(DeliveryTotals, {"connection": connection, "transport": transport}, fields)


REQUEST_ISSUED = "issued"
REQUEST_FAILED = "failed"
# The grants a token is requested with (the "grant" label).
CLIENT_CREDENTIALS = "client_credentials"
SERVICE_ACCOUNT = "service_account"
REFRESH_TOKEN = "refresh_token"  # noqa: S105 (a grant's name)
AUTHORIZATION_CODE = "authorization_code"


@contextmanager
def token_request(provider: str, grant: str) -> Iterator[None]:
    """Count the token request made in the block: issued if the block ends normally,
    failed if it raises a ``MailError`` (the error goes on)."""
    try:
        yield
    except MailError:
        count_token_request(provider, grant, issued=False)
        raise
    count_token_request(provider, grant, issued=True)


def count_token_request(provider: str, grant: str, *, issued: bool) -> None:
    """Count one request to a token endpoint (``grant``: "client_credentials",
    "service_account", "refresh_token"), issued or failed.

    Never raises: the token matters more than its count (a fault is logged).
    """
    outcome = REQUEST_ISSUED if issued else REQUEST_FAILED
    key = {"provider": provider, "grant": grant, "outcome": outcome}
    try:
        with transaction.atomic():  # a savepoint inside a caller's transaction
            _increment(TokenRequestTotal, key, {"count": 1})
    except Exception:  # any fault of the database or its connection: the count is lost
        logger.warning("Counting a token request failed", exc_info=True)


def _increment(model: type[Model], key: dict[str, str], fields: Mapping[str, int]) -> None:
    changes = {name: F(name) + amount for name, amount in fields.items() if amount}
    if model._default_manager.filter(**key).update(**changes):
        return
    # The first count for this label set: create its row (another process may just
    # have), then add.
    model._default_manager.bulk_create([model(**key)], ignore_conflicts=True)
    model._default_manager.filter(**key).update(**changes)
