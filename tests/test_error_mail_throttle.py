"""Nobody can flood the Admin Mail Address, or tie up requests, through Django's error mails."""

import logging

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.urls import reverse

from settings_app.models import MailServerConfig
from settings_app.report_mail import ThrottledAdminEmailHandler
from tests.factories import smtp_basic_post
from tests.faults import RecordingBackend

pytestmark = pytest.mark.django_db

PAGE = reverse("settings_app:mail_server")


class FakeClock:
    """Seconds since the epoch that move only when the test says so."""

    def __init__(self, now: float = 1_767_225_600.0) -> None:  # 2026-01-01 00:00:00 UTC
        self.now = now

    def __call__(self) -> float:
        return self.now


def configured_handler() -> ThrottledAdminEmailHandler:
    (handler,) = [
        h for h in logging.getLogger("django").handlers if isinstance(h, ThrottledAdminEmailHandler)
    ]
    return handler


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(configured_handler(), "clock", fake)
    return fake


@pytest.fixture
def admin_address():
    MailServerConfig.ensure_row()
    MailServerConfig.objects.update(admin_address="alerts@example.com")


@pytest.fixture
def failing_client(client, admin_user, admin_address, settings):
    """A signed-in admin whose every request fails with the same error before the view."""
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.faults.FailBeforeTheView"]
    client.force_login(admin_user)
    client.raise_request_exception = False
    return client


def test_requests_with_a_foreign_host_header_mail_nobody(client, admin_address):
    for n in range(30):
        assert client.get(PAGE, HTTP_HOST=f"evil{n}.example").status_code == 400
    assert mail.outbox == []


def test_the_same_error_is_mailed_once_however_often_it_happens(failing_client, clock):
    for _ in range(30):
        assert failing_client.get(PAGE).status_code == 500
    assert len(mail.outbox) == 1


def test_the_next_report_after_ten_minutes_counts_the_suppressed_ones(failing_client, clock):
    failing_client.get(PAGE)
    clock.now += 60
    for _ in range(4):
        failing_client.get(PAGE)
    clock.now += 539  # ten minutes after the first report, less a second
    failing_client.get(PAGE)
    assert len(mail.outbox) == 1

    clock.now += 1
    failing_client.get(PAGE)
    first, second = mail.outbox
    note = "5 similar reports suppressed since 2026-01-01 00:01:00 UTC"
    assert note not in first.body
    assert note in second.subject and second.body.startswith(note)
    assert note in second.alternatives[0][0]  # the HTML part says it too

    clock.now += 600
    failing_client.get(PAGE)
    assert "suppressed" not in mail.outbox[2].body  # counted once, then started afresh


def test_different_errors_are_mailed_separately(client, admin_user, admin_address, clock, settings):
    client.force_login(admin_user)
    client.raise_request_exception = False
    settings.MAILCONFIG_AZURE_ENVIRONMENTS = {"azure": {"label": "Azure Cloud"}}  # view fails
    client.post(PAGE, smtp_basic_post())
    client.post(reverse("settings_app:test_mail"), smtp_basic_post())  # the same error
    settings.MAILCONFIG_AZURE_ENVIRONMENTS = None  # another error in the same view
    client.post(PAGE, smtp_basic_post())
    assert len(mail.outbox) == 2


def test_error_reports_are_handed_to_the_configured_email_backend(failing_client, clock, settings):
    # Whatever EMAIL_BACKEND is (the outbox queues); the logging config names none of its own.
    assert "email_backend" not in django_settings.LOGGING["handlers"]["mail_admins"]
    settings.EMAIL_BACKEND = "tests.faults.RecordingBackend"
    RecordingBackend.handed.clear()
    failing_client.get(PAGE)
    (report,) = RecordingBackend.handed
    assert report.to == ["alerts@example.com"] and "failed before the view ran" in report.body
    assert mail.outbox == []
