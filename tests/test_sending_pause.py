"""Refused credentials: sending through the connection pauses (no sign-in at all) until
something changes: a save, a Test Mail or health check that succeeds, or Retry now."""

from __future__ import annotations

import pytest
from django.core import mail

from sender import health_check
from sender.models import Incident, OutboxMessage, Status
from settings_app.models import AuditEntry
from settings_app.retry_now import RETRY_NOW_ACTION
from tests.backup_helpers import store_backup
from tests.factories import PAGE_URL, smtp_post, store_smtp
from tests.outbox_helpers import forget_worker_connection, pending_deliveries, run_due_tasks

pytestmark = pytest.mark.django_db(transaction=True)

LOG_URL = "/admin/general-settings/mail-server/log/"
REFUSED = "535 5.7.3 Authentication unsuccessful"
ADMIN = "admin@example.com"


@pytest.fixture(autouse=True)
def queued_backend(settings):
    settings.EMAIL_BACKEND = "sender.backend.EmailBackend"
    settings.MAILCONFIG_DELIVERY = "queued"
    settings.MAILCONFIG_RETRY_SCHEDULE = [60.0, 300.0]
    forget_worker_connection()
    yield
    forget_worker_connection()


@pytest.fixture
def refusing(smtp_starttls, trust_test_ca):
    """The primary: SMTP Basic to a local server that refuses every sign-in with 5.7.3."""
    store_smtp(smtp_starttls, admin_address=ADMIN)
    smtp_starttls.injections.auth_reply = REFUSED
    return smtp_starttls


def queue(count: int) -> None:
    for number in range(count):
        mail.send_mail(f"Report {number}", "Body", None, [f"user{number}@example.com"])
    run_due_tasks()


def statuses() -> list[str]:
    return sorted(OutboxMessage.objects.values_list("status", flat=True))


def test_eleven_messages_against_refused_credentials_cost_one_failed_sign_in(refusing):
    queue(11)

    assert refusing.auth_commands == 1
    assert statuses() == [Status.FAILED] + [Status.PAUSED] * 10
    assert Incident.objects.get().pauses_sending


def test_waiting_messages_do_not_spin(refusing):
    queue(11)
    # Nothing is left to run for them: no task, no claim, no sign-in, however often
    # the workers (or the recovery sweep) come by.
    assert pending_deliveries() == []
    from sender.tasks import recover_outbox

    recover_outbox.enqueue()
    run_due_tasks()
    assert refusing.auth_commands == 1
    assert statuses().count(Status.PAUSED) == 10


def test_the_email_log_shows_waiting_messages_and_why(admin_client, refusing):
    queue(3)

    page = admin_client.get(LOG_URL).content.decode()
    assert page.count('data-testid="paused-reason"') == 2
    assert "Sending through the primary connection is paused" in page
    assert "Retry now" in page
    waiting = OutboxMessage.objects.filter(status=Status.PAUSED).first()
    detail = admin_client.get(f"{LOG_URL}{waiting.pk}/").content.decode()
    assert 'data-testid="paused-reason"' in detail and "The server rejected the sign-in" in detail


def test_retry_now_on_the_banner_sends_the_waiting_messages(admin_client, refusing):
    queue(11)
    page = admin_client.get(PAGE_URL).content.decode()
    assert 'data-testid="incident-retry-now"' in page and "csrfmiddlewaretoken" in page
    refusing.injections.auth_reply = None  # the admin had the account unlocked

    incident = Incident.objects.get()
    response = admin_client.post(
        f"/admin/general-settings/mail-server/incidents/{incident.pk}/retry-now/",
        {"next": PAGE_URL},
    )
    assert response.status_code == 302 and response.url == PAGE_URL
    run_due_tasks()

    assert statuses() == [Status.FAILED] + [Status.SENT] * 10
    assert refusing.auth_commands == 2  # the refused one, then one for all ten
    assert not Incident.objects.get().is_open
    entry = AuditEntry.objects.get(action=RETRY_NOW_ACTION)
    assert entry.changed_fields == [f"Incident #{incident.pk}: 10 waiting message(s) queued again"]


def test_retry_now_needs_a_post_with_a_csrf_token(client, admin_user, refusing):
    queue(2)
    incident = Incident.objects.get()
    url = f"/admin/general-settings/mail-server/incidents/{incident.pk}/retry-now/"
    client.force_login(admin_user)
    client.handler.enforce_csrf_checks = True
    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 403
    assert Incident.objects.get().pauses_sending


def test_refused_again_after_retry_now_pauses_again_after_one_sign_in(admin_client, refusing):
    queue(11)
    incident = Incident.objects.get()
    admin_client.post(f"/admin/general-settings/mail-server/incidents/{incident.pk}/retry-now/")
    run_due_tasks()

    assert refusing.auth_commands == 2
    assert statuses() == [Status.FAILED] * 2 + [Status.PAUSED] * 9


def test_saving_the_settings_sends_the_waiting_messages(admin_client, refusing):
    queue(11)
    refusing.injections.auth_reply = None  # the password on the form is the right one

    response = admin_client.post(PAGE_URL, smtp_post(refusing))
    assert response.status_code in (200, 302)
    run_due_tasks()

    assert statuses() == [Status.FAILED] + [Status.SENT] * 10


def test_a_passing_health_check_sends_the_waiting_messages(refusing):
    queue(4)
    refusing.injections.auth_reply = None

    health_check.run_checks()
    run_due_tasks()

    assert statuses() == [Status.FAILED] + [Status.SENT] * 3


def test_with_a_backup_the_messages_go_through_it_without_touching_the_primary(
    refusing, smtp_server_factory
):
    backup = smtp_server_factory(security="starttls", users={"alice@example.com": "s3cret"})
    store_backup(
        backup, username="alice@example.com", password="s3cret", from_address="alice@example.com"
    )
    queue(11)

    assert refusing.auth_commands == 1  # the first message's, which then failed over
    assert statuses() == [Status.SENT] * 11
    assert set(OutboxMessage.objects.values_list("connection", flat=True)) == {"backup"}
    reports = [m for m in backup.messages if m.message["Subject"].startswith("Report")]
    assert len(reports) == 11
