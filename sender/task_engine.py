"""Every use of the task engine's internals (django-tasks-db), in one module.

The rest of the project enqueues tasks through the public ``@task`` API
(``task.enqueue()``, ``task.using(run_after=...)``), which Django 6's
``django.tasks`` keeps. What that API does not offer, and the project needs, is
here: whether a run of a task is waiting, dropping queued runs, pruning finished
records, the worker command and its stop signal, the queue table's statistics,
and an exclusive transaction on SQLite. Moving to ``django.tasks`` (or another
database backend) means rewriting this file only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import FrameType
from typing import Any

from django.core.management.base import CommandError
from django.db import OperationalError, connections, router
from django.utils import timezone
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV, run_with_reloader
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.management.commands import db_worker as library_worker
from django_tasks_db.models import DBTaskResult, get_date_max
from django_tasks_db.utils import exclusive_transaction

logger = logging.getLogger(__name__)


def has_queued_run(task: Any, *, due_by: datetime | None = None) -> bool:
    """Whether a run of ``task`` (a ``@task`` function) waits in the queue, not yet taken
    by a worker; with ``due_by``, only a run that may start at or before that time."""
    runs = DBTaskResult.objects.filter(task_path=task.module_path, status=TaskResultStatus.READY)
    if due_by is not None:
        # A run queued without run_after is stored with the engine's far-future sentinel.
        runs = runs.filter(run_after__lte=due_by) | runs.filter(run_after=get_date_max())
    return runs.exists()


def has_ready_run(task: Any) -> bool:
    """Whether a run of ``task`` waits that a worker may take now."""
    return has_queued_run(task, due_by=timezone.now())


def drop_queued_runs(task: Any) -> int:
    """Delete the runs of ``task`` that no worker has taken yet; return how many."""
    deleted, _ = DBTaskResult.objects.filter(
        task_path=task.module_path, status=TaskResultStatus.READY
    ).delete()
    return deleted


def prune_finished(before: datetime) -> int:
    """Delete the records of runs (of any task) that finished before ``before``."""
    deleted, _ = DBTaskResult.objects.finished().filter(finished_at__lt=before).delete()
    return deleted


def refresh_queue_statistics() -> None:
    """On PostgreSQL, ANALYZE the task table (a worker often starts against a backlog that
    arrived faster than autovacuum looks, and stale statistics pick a slow plan)."""
    connection = connections[router.db_for_write(DBTaskResult)]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Not the table's owner: PostgreSQL warns and skips it, the worker goes on.
            cursor.execute(f"ANALYZE {connection.ops.quote_name(DBTaskResult._meta.db_table)}")


@contextmanager
def claim_transaction(using: str | None = None) -> Generator[None, None, None]:
    """A transaction in which rows can be claimed safely: ``atomic`` on PostgreSQL (where
    ``SELECT ... FOR UPDATE SKIP LOCKED`` locks rows), an exclusive one on SQLite (which
    has no row locks: two claims take turns on the whole file)."""
    with exclusive_transaction(using):
        yield


# The worker command ----------------------------------------------------------------

WorkerCommandBase = library_worker.Command


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class WorkerHooks:
    """What the worker command does around the library's loop: when it starts, as it
    polls or finishes a task (the heartbeat), when it is asked to stop, and when it ends."""

    on_start: Callable[[], object] = _nothing
    on_beat: Callable[[], object] = _nothing
    on_stop: Callable[[], object] = _nothing
    on_exit: Callable[[], object] = _nothing


DATABASE_FAULT = f"{OperationalError.__module__}.{OperationalError.__qualname__}"


class _HookedWorker(library_worker.Worker):
    """The library's worker, calling the ``WorkerHooks`` without copying its loop."""

    def __init__(self, *, hooks: WorkerHooks, **options: Any) -> None:
        self.hooks = hooks
        super().__init__(**options)

    def run(self) -> None:
        self.hooks.on_start()
        try:
            super().run()
        except (SystemExit, KeyboardInterrupt):  # how the library's signal handler stops
            self.hooks.on_exit()
            raise
        # A database fault ends the loop too, to be waited out and run again: not an exit.
        self.hooks.on_exit()

    def run_task(self, db_task_result: Any) -> None:
        try:
            super().run_task(db_task_result)
        finally:
            self.hooks.on_beat()
        if db_task_result.exception_class_path == DATABASE_FAULT:
            # The task failed on the database (locked, connection lost): the loop stops, so
            # the worker waits the fault out as it does one in its own queries.
            lines = db_task_result.traceback.strip().splitlines()
            raise OperationalError(lines[-1].split(": ", 1)[-1] if lines else "database fault")

    # The library's loop reads the interval right before each sleep on an empty queue: the
    # one place to beat while idle without copying its loop.
    @property  # a plain attribute in the library
    def interval(self) -> float:
        self.hooks.on_beat()
        return self._interval

    @interval.setter
    def interval(self, seconds: float) -> None:
        self._interval = seconds

    def shutdown(self, signum: int, frame: FrameType | None) -> None:
        # First, so the running task sees it whether the library then waits or exits.
        self.hooks.on_stop()
        super().shutdown(signum, frame)


def run_worker(
    command: Any,
    hooks: WorkerHooks,
    *,
    verbosity: int,
    queue_name: str,
    interval: float,
    batch: bool,
    backend_name: str,
    startup_delay: bool,
    reload: bool,
    max_tasks: int | None,
    worker_id: str,
    exclude_queues: str,
    **options: Any,
) -> None:
    """The library's ``db_worker`` (same options, same loop) with the ``hooks``: at
    SIGTERM, SIGINT or SIGQUIT ``on_stop``, the task being run finishes, no new one starts."""
    command.configure_logging(verbosity)
    if reload and batch:
        logger.warning("--reload and --batch cannot be specified together. Disabling autoreload.")
        reload = False
    queue_names = queue_name.split(",")
    excluded = exclude_queues.split(",") if exclude_queues else []
    if excluded and "*" not in queue_names:
        raise CommandError("--exclude-queues can only be used with --queue-name=*")
    worker = _HookedWorker(
        hooks=hooks,
        queue_names=queue_names,
        interval=interval,
        batch=batch,
        backend_name=backend_name,
        startup_delay=startup_delay,
        max_tasks=max_tasks,
        worker_id=worker_id,
        excluded_queue_names=excluded,
    )
    if reload:
        if os.environ.get(DJANGO_AUTORELOAD_ENV) == "true":
            worker.configure_signals()  # only the reloader's child handles signals
        run_with_reloader(worker.run)
    else:
        worker.configure_signals()
        worker.run()
