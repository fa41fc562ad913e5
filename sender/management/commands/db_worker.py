"""``manage.py db_worker``: django-tasks-db's worker, first recovering stalled messages.

It replaces the command of the same name (``sender`` comes before
``django_tasks_db`` in INSTALLED_APPS) and adds, at start:

- messages left in Sending by a worker that died are queued again once their lease
  has run out, and the periodic recovery sweep is scheduled if none is;
- the periodic tasks other apps registered (``sender/schedules.py``) get their
  start-up call: the expiry radar's alert check runs once at every start;
- the worker keeps its database connection (the library closes it after every task
  when ``CONN_MAX_AGE`` is 0, the web's default: a new PostgreSQL connection per
  message cost more than sending it);
- on PostgreSQL, the worker's own commits do not wait for the disk
  (``synchronous_commit = off``). Only a crash of the database server can lose
  them, and only the last fraction of a second: a message recorded as sent would
  then be sent again (delivery is at-least-once anyway), a claim or a retry would
  come back through the lease. Messages are queued by the web process, whose
  commits stay synchronous, so a queued message is never lost this way;
- on PostgreSQL, the task table's planner statistics are refreshed (``ANALYZE``).
  A worker often starts against a backlog (after an outage, a deploy or a crash)
  that arrived faster than autovacuum looks (once a minute): with statistics from
  when the table was nearly empty, PostgreSQL picks each next task by reading and
  sorting the whole queue instead of the library's partial index, 6 ms instead of
  0.3 ms per message at 6,000 queued;
- a database fault (locked, I/O error, connection lost, server restarted) does not
  stop the worker: it waits and starts again (``sender/worker_faults.py``), and a
  SQLite file replaced under it stops it for its supervisor to restart.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django_tasks_db.management.commands.db_worker import Command as DatabaseWorkerCommand
from django_tasks_db.models import DBTaskResult

from sender import delivery, schedules, worker_faults


def _worker_session(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")


def _refresh_queue_statistics() -> None:
    connection = connections[router.db_for_write(DBTaskResult)]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Not the table's owner: PostgreSQL warns and skips it, the worker goes on.
            cursor.execute(f"ANALYZE {connection.ops.quote_name(DBTaskResult._meta.db_table)}")


class Command(DatabaseWorkerCommand):
    help = (
        "Run a worker that sends queued mail (django-tasks-db's db_worker), after "
        "queueing again messages whose worker stopped."
    )
    started = False  # the start-up steps have run once

    def handle(self, *args: Any, **options: Any) -> None:
        for connection in connections.all():
            connection.close()  # opened by the system checks with the web's settings
            connection.settings_dict["CONN_MAX_AGE"] = None  # kept; reopened after errors
        connection_created.connect(_worker_session)
        with worker_faults.watch_sqlite_file():
            worker_faults.run_through_database_faults(
                self.start_up, lambda: super(Command, self).handle(*args, **options)
            )

    def start_up(self) -> None:
        """Before the loop; after a database fault, the recovery steps again (they write, so
        they also prove the database takes the worker's writes again)."""
        if not self.started:
            _refresh_queue_statistics()
        delivery.recover()
        delivery.ensure_sweep_scheduled()
        if not self.started:
            schedules.start_schedules()  # once per process: the expiry radar's check
        self.started = True
