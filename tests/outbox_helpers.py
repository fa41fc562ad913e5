"""Running the outbox's tasks in tests: what ``manage.py db_worker`` does, in-process."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import F
from django.utils import timezone
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult

from sender import delivery
from sender.models import OutboxMessage
from sender.tasks import deliver_message


def run_due_tasks(limit: int = 1000) -> int:
    """Claim and run every task that is due now, as a db_worker would; return how many."""
    worker = Worker(
        queue_names=["default"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="test-worker",
        excluded_queue_names=[],
    )
    count = 0
    while count < limit:
        result = DBTaskResult.objects.ready().first()
        if result is None:
            return count
        result.claim(worker.worker_id)
        worker.run_task(result)
        count += 1
    return count


def pending_deliveries() -> list[DBTaskResult]:
    """The deliver_message tasks not yet run, soonest first."""
    return list(
        DBTaskResult.objects.filter(task_path=deliver_message.module_path, status="READY").order_by(
            "run_after"
        )
    )


def travel(seconds: float) -> None:
    """Move every waiting task and retry time ``seconds`` earlier: as if that much time passed.

    (The tasks framework compares run_after with the database's rows and the clock; moving
    the rows is the clock's injection point that needs no sleeping.)
    """
    shift = timedelta(seconds=seconds)
    for task in DBTaskResult.objects.filter(status="READY"):
        if task.run_after.year < 9999:
            task.run_after -= shift
            task.save(update_fields=["run_after"])
    OutboxMessage.objects.exclude(next_attempt_at=None).update(
        next_attempt_at=F("next_attempt_at") - shift
    )
    OutboxMessage.objects.exclude(lease_until=None).update(lease_until=F("lease_until") - shift)


def forget_worker_connection() -> None:
    """Close the in-process worker's kept transports, primary and backup (servers differ
    between tests)."""
    delivery.connections.discard()
    delivery.backup_connections.discard()
    assert timezone.now()
