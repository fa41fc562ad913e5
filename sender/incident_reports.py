"""Telling the incidents what a recorded batch did, once per batch.

A batch's deliveries go to ``sender/incidents.py`` after they are recorded:
each run of successful tries through a connection closes that connection's open
incident with one call (one UPDATE when nothing is open, which is almost always),
and each failed try counts towards its connection's incident, in the order they
happened (failures are few, and each one counts: three temporary ones in a row
open an incident).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from . import incidents
from .outcomes import Delivery

logger = logging.getLogger(__name__)


def report(deliveries: Sequence[Delivery]) -> None:
    """Report the tries of ``deliveries`` (recorded already) to the incidents."""
    delivered: dict[str, list[int]] = {}
    for delivery in deliveries:
        for item in delivery.tries:
            if item.error is None:
                delivered.setdefault(item.connection, []).append(delivery.row.pk)
                continue
            _flush(delivered, item.connection)
            _tell(
                incidents.delivery_failed,
                delivery.row,
                item.error,
                transient=item.transient,
                started=item.started,
                connection=item.connection,
            )
    for connection in list(delivered):
        _flush(delivered, connection)


def _flush(delivered: dict[str, list[int]], connection: str) -> None:
    # Mail went through again: an open incident of this connection closes.
    pks = delivered.pop(connection, [])
    if not pks:
        return
    how = (
        f"Message #{pks[0]} delivered"
        if len(pks) == 1
        else f"Messages #{pks[0]}-#{pks[-1]} delivered"
    )
    _tell(incidents.delivered, how, connection=connection)


def _tell(report: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    # The outcome is recorded already; a fault in the incident bookkeeping (or in the alert
    # it sends) is logged and must not turn into a failed task or a lost outcome.
    try:
        report(*args, **kwargs)
    except Exception:
        logger.exception("Recording the delivery outcome for incidents failed")
