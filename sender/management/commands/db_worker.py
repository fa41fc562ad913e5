"""``manage.py db_worker``: django-tasks-db's worker, first recovering stalled messages.

It replaces the command of the same name (``sender`` comes before
``django_tasks_db`` in INSTALLED_APPS) and adds one thing at start: messages left
in Sending by a worker that died are queued again once their lease has run out,
and the periodic recovery sweep is scheduled if none is.
"""

from __future__ import annotations

from typing import Any

from django_tasks_db.management.commands.db_worker import Command as DatabaseWorkerCommand

from sender import delivery


class Command(DatabaseWorkerCommand):
    help = (
        "Run a worker that sends queued mail (django-tasks-db's db_worker), after "
        "queueing again messages whose worker stopped."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        delivery.recover()
        delivery.ensure_sweep_scheduled()
        super().handle(*args, **options)
