"""A mail worker rides out database faults instead of dying of them.

``manage.py db_worker`` runs its start-up steps and then django-tasks-db's loop.
That loop stops the process on any database error but a lock it meets while
claiming a task: a SQLite write lock held longer than the busy timeout, a
database file that turned read-only ("disk I/O error"), a PostgreSQL connection
that was terminated, a server restarting or failing over. Each of those passes.

``run_through_database_faults()`` runs the worker's start-up and loop again after
such an error: it waits 1 s, then twice as long each time up to 30 s, and logs once
when the database becomes unavailable and once when it is back (not at every try).
Each new try starts with the start-up steps, which write to the database, so the
worker only goes on when it can claim work again. A message that was being sent
when the error came stays Sending until its lease runs out, and is then sent again
(``sender.delivery``), as after a worker that died.

``watch_sqlite_file()`` notices a SQLite file that was deleted or replaced (a
restored backup, a new ``migrate``) while the worker had it open: the worker would
go on with the old, deleted file and never see mail queued in the new one. It
compares the file's device and inode before each query with those of the file the
connection opened, and then stops the worker with ``DATABASE_FILE_REPLACED`` as exit
status, so that its supervisor starts it again on the new file.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.db.utils import InterfaceError, OperationalError

logger = logging.getLogger(__name__)

FIRST_WAIT = 1.0
LONGEST_WAIT = 30.0
# The worker stopped on purpose and must be started again (sysexits.h EX_TEMPFAIL).
DATABASE_FILE_REPLACED = 75


def is_temporary(error: BaseException) -> bool:
    """Whether ``error`` is the database being unavailable for now, not a bug or bad data.

    Django raises OperationalError for what the database server or file does (locked,
    I/O error, connection lost, server shutting down) and InterfaceError for a connection
    that is already closed; ProgrammingError and IntegrityError are the code's or the
    data's, and retrying them would change nothing.
    """
    return isinstance(error, OperationalError | InterfaceError)


class DatabaseOutage:
    """How long to wait before the next try, and the log lines at the start and the end."""

    def __init__(self, first: float = FIRST_WAIT, longest: float = LONGEST_WAIT) -> None:
        self.first = first
        self.longest = longest
        self.since: float | None = None  # time.monotonic() of the first failure
        self.next_wait = first

    @property
    def ongoing(self) -> bool:
        """Whether the database failed and has not worked since."""
        return self.since is not None

    def failed(self, error: BaseException) -> float:
        """Count a failed try; the seconds to wait before the next one."""
        if self.since is None:
            self.since = time.monotonic()
            logger.warning(
                "The database is unavailable (%s): this worker waits and tries again, after "
                "%g s at first and then up to every %g s. Mail being sent is sent again once "
                "its lease runs out.",
                _first_line(error),
                self.first,
                self.longest,
            )
        wait, self.next_wait = self.next_wait, min(self.next_wait * 2, self.longest)
        return wait

    def ended(self) -> None:
        """The database worked again."""
        if self.since is not None:
            logger.warning(
                "The database is available again after %.0f s: this worker goes on.",
                time.monotonic() - self.since,
            )
        self.since = None
        self.next_wait = self.first


def run_through_database_faults(
    start: Callable[[], None],
    work: Callable[[], None],
    *,
    outage: DatabaseOutage | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Run ``start`` then ``work`` (the worker's loop) until ``work`` returns; after a
    temporary database error, wait and run both again. Other errors are raised."""
    outage = outage or DatabaseOutage()
    while True:
        try:
            start()
            outage.ended()
            work()
            return
        except Exception as error:
            if not is_temporary(error):
                raise
            wait = outage.failed(error)
        close_connections()
        # The worker process has nothing else to do meanwhile; a signal still stops it
        # (the tasks library's handler exits when no task is running).
        sleep(wait)


def close_connections() -> None:
    """Drop every database connection, so the next query opens a fresh one."""
    for connection in connections.all(initialized_only=True):
        # A connection that is already broken may fail to close: it is dropped all the same.
        with contextlib.suppress(Exception):
            connection.close()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]


# --- A replaced SQLite file -----------------------------------------------------------


def sqlite_path(connection: BaseDatabaseWrapper) -> Path | None:
    """The file behind a SQLite connection (plain path or ``file:`` URI); None otherwise."""
    if connection.vendor != "sqlite":
        return None
    name = str(connection.settings_dict.get("NAME") or "")
    if not name or name == ":memory:" or "mode=memory" in name:
        return None
    if name.startswith("file:"):
        return Path(url2pathname(urlsplit(name).path))
    return Path(name)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino


class SqliteFileWatch:
    """Stops the worker when its SQLite file is no longer the file at the configured path."""

    def __init__(self, alias: str = DEFAULT_DB_ALIAS) -> None:
        self.alias = alias
        self.path = sqlite_path(connections[alias])
        self.opened: tuple[int, int] | None = None
        self.stopping = False

    def connected(self, sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
        """``connection_created``: remember which file this connection opened."""
        if connection.alias == self.alias and self.path is not None:
            self.opened = _identity(self.path)

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        """An execute wrapper (Django's hook around every query of the connection)."""
        self.check()
        return execute(sql, params, many, context)

    def check(self) -> None:
        """Exit with ``DATABASE_FILE_REPLACED`` when the open file was deleted or replaced."""
        if self.path is None or self.opened is None:
            return
        now = _identity(self.path)
        if now == self.opened:
            return
        # SystemExit, not an error: no task may catch it and go on with the old file.
        # (The tasks library records a stopped task's failure: its queries land here again.)
        if self.stopping:
            raise SystemExit(DATABASE_FILE_REPLACED)
        self.stopping = True
        what = "was deleted" if now is None else "was replaced by another file"
        logger.critical(
            "The database file %s %s while this worker had it open: mail queued in the new "
            "file would never be seen. The worker stops (exit status %d) so that it is "
            "started again on the file now at that path.",
            self.path,
            what,
            DATABASE_FILE_REPLACED,
        )
        raise SystemExit(DATABASE_FILE_REPLACED)


@contextmanager
def watch_sqlite_file(alias: str = DEFAULT_DB_ALIAS) -> Iterator[SqliteFileWatch]:
    """Within the block, every query first checks that the SQLite file is still the one
    the connection opened (nothing happens on other databases)."""
    watch = SqliteFileWatch(alias)
    if watch.path is None:
        yield watch
        return
    connection = connections[alias]
    if connection.connection is not None:
        watch.opened = _identity(watch.path)
    connection_created.connect(watch.connected, weak=False)
    try:
        with connection.execute_wrapper(watch):
            yield watch
    except SystemExit:
        if watch.stopping:
            empty_write_ahead_log(connection)
            close_connections()
        raise
    finally:
        connection_created.disconnect(watch.connected)


def empty_write_ahead_log(connection: BaseDatabaseWrapper) -> None:
    """Write the old file's WAL back into the old file and empty the -wal file.

    The -wal file beside the path is still the old file's: SQLite does not write it back
    when a connection to a moved file closes, and the next process to open the path would
    read it as part of the new file (a mix of both databases).
    """
    raw = connection.connection
    if raw is None:
        return
    try:
        if raw.in_transaction:
            raw.rollback()
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the raw connection: not watched
    except sqlite3.Error:
        logger.exception("The old database file's write-ahead log could not be emptied")
