"""Waking the workers: a task on the tasks framework that says "there is mail to drain".

A wake-up carries nothing; the outbox rows are the work. So one that is already
waiting covers every message committed before a worker takes it: ``wake`` skips
the enqueue (one INSERT and, in the web process, one synchronous commit) when a
wake-up is waiting and due, which one indexed read tells. A retry is a wake-up with
``run_after`` at the message's next attempt time, skipped when one waits that runs
no later.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from . import task_engine


def wake(run_after: datetime | None = None) -> None:
    """Make sure a worker drains the outbox now (or at ``run_after``)."""
    from .tasks import drain_outbox  # the task module imports the drain, which imports this

    due_by = run_after or timezone.now()
    if task_engine.has_queued_run(drain_outbox, due_by=due_by):
        return
    task = drain_outbox.using(run_after=run_after) if run_after else drain_outbox
    task.enqueue()


def wake_after_commit(run_after: datetime | None = None) -> None:
    """``wake`` once the current transaction commits (at once outside one): a worker never
    looks for rows it cannot see yet, and a rolled-back request wakes nobody. One wake-up
    per transaction: a second call while one is registered adds nothing."""
    connection = transaction.get_connection()
    if connection.in_atomic_block:
        for _savepoints, registered, _robust in connection.run_on_commit:
            if not isinstance(registered, _WakeUp):
                continue
            if registered.run_after is None or (
                run_after is not None and registered.run_after <= run_after
            ):
                return  # one that runs no later is already registered
    transaction.on_commit(_WakeUp(run_after))


class _WakeUp:
    """A wake-up waiting for the commit (recognisable among the commit's callbacks)."""

    def __init__(self, run_after: datetime | None) -> None:
        self.run_after = run_after

    def __call__(self) -> None:
        wake(self.run_after)
