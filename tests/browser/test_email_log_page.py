"""The Email Log in Chromium: reaching it, reading it at 1280 and 400 pixels, Resend."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import Page, expect

from sender.models import Attempt, Connection, OutboxMessage, Status
from tests.factories import store_smtp
from tests.log_rows import LOG_URL, attempt, logged_message
from tests.outbox_helpers import forget_worker_connection, run_due_tasks

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LONG_ADDRESS = "a.very.long.distribution.list.for.the.night.shift.operators@subsidiary.example.com"


def fill_log() -> dict[str, int]:
    """A log with one message in each state, long addresses and errors that must wrap."""
    now = timezone.now()
    sent = logged_message(
        status=Status.SENT,
        subject="Nightly backup finished",
        to="ops@example.com",
        cc_count=1,
        queued_at=now - timedelta(minutes=40),
    )
    attempt(sent, started_at=now - timedelta(minutes=40), reply="250 2.0.0 OK queued as 9A1F")
    failed = logged_message(
        status=Status.FAILED,
        subject="Disk almost full on db-primary-01 (92% of /var/lib/postgresql used)",
        to=f"{LONG_ADDRESS}, oncall@example.com",
        bcc_count=2,
        attempts=2,
        connection=Connection.BACKUP,
        queued_at=now - timedelta(minutes=30),
        last_error="535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.",
        last_error_code="535 5.7.139",
        last_error_hint="SMTP AUTH is disabled for this mailbox or tenant: enable authenticated SMTP for the mailbox in the Microsoft 365 admin center, or switch to API mode.",
    )
    attempt(
        failed,
        started_at=now - timedelta(minutes=30),
        duration_ms=1830,
        transport="SMTP (Basic)",
        outcome=Attempt.Outcome.TRANSIENT,
        reply="421 4.7.66 Too many connections, try again later",
        error="The server is busy.",
        hint="Tried again automatically.",
    )
    attempt(
        failed,
        started_at=now - timedelta(minutes=25),
        duration_ms=640,
        transport="SMTP (Basic)",
        connection=Connection.BACKUP,
        outcome=Attempt.Outcome.PERMANENT,
        reply="535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.",
        error="The server refused the login.",
        error_code="535 5.7.139",
        hint="Enable authenticated SMTP for the mailbox, or use API mode.",
    )
    logged_message(
        status=Status.RETRYING, subject="Weekly report", queued_at=now - timedelta(minutes=10)
    )
    logged_message(status=Status.QUEUED, subject="Password reset", queued_at=now)
    return {"sent": sent.pk, "failed": failed.pk}


def no_horizontal_scroll(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0


def test_navigation_leads_to_the_email_log(admin_page: Page, live_server):
    navigation = admin_page.get_by_role("navigation", name="Console navigation")
    navigation.get_by_role("link", name="Email Log").click()
    expect(admin_page).to_have_url(live_server.url + LOG_URL)
    expect(admin_page.get_by_test_id("breadcrumb")).to_have_text(
        "Admin General Settings Email Log", use_inner_text=False
    )
    expect(admin_page.get_by_role("heading", name="Email Log", exact=True)).to_be_visible()


def test_filtering_and_opening_a_message(admin_page: Page, live_server):
    fill_log()
    page = admin_page
    page.goto(live_server.url + LOG_URL)
    expect(page.get_by_test_id("log-row")).to_have_count(4)
    page.get_by_label("Status").select_option("failed")
    page.get_by_test_id("apply-filters").click()
    expect(page.get_by_test_id("log-row")).to_have_count(1)
    page.get_by_role("link", name="Disk almost full").click()
    expect(page.get_by_test_id("attempt")).to_have_count(2)
    page.get_by_test_id("back-to-log").click()
    expect(page).to_have_url(live_server.url + LOG_URL)


@pytest.mark.parametrize("width", [1280, 400])
def test_the_log_reads_without_sideways_scrolling(admin_page: Page, live_server, width):
    fill_log()
    page = admin_page
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(live_server.url + LOG_URL)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"email-log-{width}px.png"), full_page=True)
    assert no_horizontal_scroll(page)
    error = page.locator(".log-error").first
    box = error.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
    if width == 400:  # each message is a card of labelled lines
        label = error.evaluate("cell => getComputedStyle(cell, '::before').content")
        assert label == '"Last error"'


@pytest.mark.parametrize("width", [1280, 400])
def test_a_message_s_detail_reads_without_sideways_scrolling(admin_page: Page, live_server, width):
    ids = fill_log()
    page = admin_page
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(live_server.url + f"{LOG_URL}{ids['failed']}/")
    assert no_horizontal_scroll(page)
    expect(page.get_by_test_id("resend-copy")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"email-log-detail-{width}px.png"), full_page=True)


def test_resend_is_off_with_its_reason_for_a_delivered_message(admin_page: Page, live_server):
    ids = fill_log()
    page = admin_page
    page.goto(live_server.url + f"{LOG_URL}{ids['sent']}/")
    expect(page.get_by_test_id("resend-copy")).to_be_disabled()
    expect(page.get_by_test_id("resend-requeue")).to_have_count(0)
    expect(page.get_by_test_id("resend-reason")).to_have_text(
        "The content of delivered messages is not kept, for privacy."
    )


@pytest.fixture
def refusing_smtp(smtp_starttls, trust_test_ca, settings):
    """A stored SMTP configuration whose server refuses bob@example.com until told otherwise."""
    settings.EMAIL_BACKEND = "sender.backend.EmailBackend"  # pytest-django's is locmem
    settings.MAILCONFIG_DELIVERY = "queued"
    store_smtp(smtp_starttls)
    smtp_starttls.injections.rcpt_replies["bob@example.com"] = "550 5.1.1 No such user"
    forget_worker_connection()
    yield smtp_starttls
    forget_worker_connection()


def test_resend_a_failed_message_from_its_page(admin_page: Page, live_server, refusing_smtp):
    mail.send_mail("Disk almost full", "92% used.", None, ["bob@example.com"])
    run_due_tasks()
    row = OutboxMessage.objects.get()
    refusing_smtp.injections.rcpt_replies.clear()  # the admin fixed the mailbox
    page = admin_page
    page.goto(live_server.url + LOG_URL)
    page.get_by_role("link", name="Disk almost full").click()
    expect(page.get_by_test_id("status")).to_have_text("Failed")
    expect(page.get_by_test_id("last-error")).to_contain_text("refused the recipient")
    page.screenshot(path=str(ARTIFACTS / "email-log-detail-real-failure.png"), full_page=True)
    page.get_by_test_id("resend-requeue").click()
    expect(
        page.get_by_role("alert").filter(has_text="queued again, with the same Message-ID")
    ).to_be_visible()
    expect(page.get_by_test_id("status")).to_have_text("Queued")
    run_due_tasks()
    page.reload()
    expect(page.get_by_test_id("status")).to_have_text("Sent")
    expect(page.get_by_test_id("attempt")).to_have_count(2)
    assert refusing_smtp.messages[-1].message["Message-ID"] == row.message_id


def test_resend_a_copy_from_a_message_s_page(admin_page: Page, live_server, refusing_smtp):
    mail.send_mail("Disk almost full", "92% used.", None, ["bob@example.com"])
    run_due_tasks()
    original = OutboxMessage.objects.get()
    page = admin_page
    page.goto(live_server.url + f"{LOG_URL}{original.pk}/")
    page.get_by_test_id("resend-copy").click()
    # A copy goes to real people again: the page asks first, and nothing is queued yet.
    expect(page.get_by_test_id("confirm-copy")).to_contain_text("Send a copy of this message")
    assert OutboxMessage.objects.count() == 1
    page.get_by_test_id("confirm-copy-button").click()
    page.wait_for_url(lambda url: f"{LOG_URL}{original.pk}/" not in url)  # on the copy's page
    copy = OutboxMessage.objects.exclude(pk=original.pk).get()
    expect(page).to_have_url(live_server.url + f"{LOG_URL}{copy.pk}/")
    expect(
        page.get_by_role("alert").filter(has_text=f"queued as message #{copy.pk}")
    ).to_be_visible()
    expect(page.get_by_role("link", name=f"message #{original.pk}")).to_be_visible()


@pytest.mark.parametrize("width", [1280, 400])
def test_a_partly_refused_message_reads_and_resends_to_the_refused(
    admin_page: Page, live_server, refusing_smtp, width
):
    mail.send_mail("Disk almost full", "92% used.", None, [LONG_ADDRESS, "bob@example.com"])
    run_due_tasks()
    page = admin_page
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(live_server.url + LOG_URL)
    expect(page.get_by_test_id("status")).to_have_text("Sent, 1 recipient refused")
    assert no_horizontal_scroll(page)
    page.screenshot(path=str(ARTIFACTS / f"email-log-refused-{width}px.png"), full_page=True)
    page.get_by_role("link", name="Disk almost full").click()
    expect(page.get_by_test_id("refused-recipients")).to_contain_text("bob@example.com")
    expect(page.get_by_test_id("attempt-refused")).to_contain_text("550 5.1.1 No such user")
    assert no_horizontal_scroll(page)
    page.screenshot(path=str(ARTIFACTS / f"email-log-refused-detail-{width}px.png"), full_page=True)
    refusing_smtp.injections.rcpt_replies.clear()
    page.get_by_test_id("resend-refused").click()
    expect(
        page.get_by_role("alert").filter(has_text="to the refused recipients only")
    ).to_be_visible()
    run_due_tasks()
    assert refusing_smtp.messages[-1].rcpt_tos == ["bob@example.com"]
