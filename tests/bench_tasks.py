"""A task that does nothing, for the outbox benchmark's engine floor: how many tasks per
second django-tasks-db's worker runs here when the task itself costs nothing."""

from django_tasks import task


@task()
def nothing(number: int) -> int:
    """Return ``number`` (the task's result row is written like a delivery's)."""
    return number
