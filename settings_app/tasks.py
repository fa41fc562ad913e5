"""The Mail Server page's own task on the workers: the expiry radar's daily alert check.

It lives here, not in ``sender/tasks.py``, because it reads the expiry radar (which
reads the OAuth grant), and the sender imports neither; the sender's recovery sweep
and worker start call it through the hooks of ``sender/schedules.py``.
"""

from __future__ import annotations

from django_tasks import task

from . import expiry_alerts


@task()
def expiry_alert_check() -> str:
    """Mail the expiry alerts now due, then queue tomorrow's check."""
    tried = expiry_alerts.check_expiries()
    expiry_alerts.ensure_scheduled()
    return ", ".join(f"{alert.key} {alert.threshold} {alert.outcome}" for alert in tried) or (
        "nothing to send"
    )
