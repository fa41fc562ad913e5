"""``manage.py db_worker``: django-tasks-db's worker, set up for sending mail.

It replaces the command of the same name (``sender`` comes before
``django_tasks_db`` in INSTALLED_APPS), runs the library's worker loop
(``sender/task_engine.py``) and adds, at start:

- a warning when ``MAILCONFIG_SEND_LEASE`` is shorter than four times
  ``MAILCONFIG_SEND_TIMEOUT`` (a message still being sent could be taken over);
- a worker is woken for messages left in Sending by a worker that died (once their
  lease has run out) or left without a wake-up, and the periodic recovery sweep is
  scheduled if none is;
- the periodic tasks other apps registered (``sender/schedules.py``) get their
  start-up call: the expiry radar's alert check runs once at every start;
- the worker keeps its database connection (the library closes it after every task
  when ``CONN_MAX_AGE`` is 0, the web's default);
- on PostgreSQL, the worker's own commits do not wait for the disk
  (``synchronous_commit = off``). Only a crash of the database server can lose
  them, and only the last fraction of a second: a message recorded as sent would
  then be sent again (delivery is at-least-once anyway), a claim or a retry would
  come back through the lease. Messages are queued by the web process, whose
  commits stay synchronous, so a queued message is never lost this way;
- on PostgreSQL, the task table's planner statistics are refreshed (``ANALYZE``):
  a worker often starts against a backlog that arrived faster than autovacuum looks;
- a database fault (locked, I/O error, connection lost, server restarted) does not
  stop the worker: it waits and starts again (``sender/worker_faults.py``), and a
  SQLite file replaced under it stops it for its supervisor to restart;
- the worker records its heartbeat (``sender/heartbeats.py``): when its loop starts, as it
  polls an empty queue and after each task, at most every few seconds, and its stop.

On SIGTERM or SIGINT the worker stops gracefully: the drain it runs finishes the
message it is sending, records it, gives back the rest of its batch
(``sender.drain.request_stop``) and the process exits; a second signal exits at once.
"""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from sender import drain, heartbeats, recovery, schedules, task_engine, worker_faults

HOOKS = task_engine.WorkerHooks(
    on_beat=heartbeats.beat,
    on_stop=drain.request_stop,
    on_exit=heartbeats.stop,
)


def _worker_session(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")


class Command(task_engine.WorkerCommandBase):
    help = (
        "Run a worker that sends queued mail (django-tasks-db's db_worker), after "
        "waking a worker for messages whose worker stopped."
    )
    started = False  # the start-up steps have run once

    def handle(self, *args: Any, **options: Any) -> None:
        for connection in connections.all():
            connection.close()  # opened by the system checks with the web's settings
            connection.settings_dict["CONN_MAX_AGE"] = None  # kept; reopened after errors
        connection_created.connect(_worker_session)
        recovery.warn_if_lease_short()
        with worker_faults.watch_sqlite_file():
            worker_faults.run_through_database_faults(
                self.start_up, lambda: task_engine.run_worker(self, HOOKS, **options)
            )

    def start_up(self) -> None:
        """Before the loop; after a database fault, the recovery steps again (they write, so
        they also prove the database takes the worker's writes again)."""
        if not self.started:
            task_engine.refresh_queue_statistics()
        recovery.recover()
        recovery.ensure_sweep_scheduled()
        heartbeats.start()  # a write: the database takes the worker's writes again
        if not self.started:
            schedules.start_schedules()  # once per process: the expiry radar's check
        self.started = True
