"""The banner, the health check's history strip and the incidents, in Chromium at 1280 and 400 px."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from sender.models import HealthCheckRun, Incident

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LOG_URL = "/admin/general-settings/mail-server/log/"
LONG_ERROR = (
    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
    "Tenant. Visit https://aka.ms/smtp_auth_disabled for more information."
)


def fill_history() -> None:
    """30 hourly runs, a few red, and an open incident after a long-running one."""
    now = timezone.now()
    for n in range(30):
        red = n in (11, 12, 29)
        HealthCheckRun.objects.create(
            started_at=now - timedelta(hours=30 - n),
            connection="primary",
            transport="SMTP (Basic)",
            recipient="admin@example.com",
            ok=not red,
            duration_ms=380 + 40 * n,
            error=LONG_ERROR if red else "",
            error_code="535 5.7.139" if red else "",
            hint="SMTP AUTH is disabled for this mailbox or tenant: enable authenticated SMTP "
            "for the mailbox in the Microsoft 365 admin center, or switch to API mode."
            if red
            else "",
        )
    Incident.objects.create(
        cause=Incident.Cause.PERMANENT,
        failing_since=now - timedelta(hours=2),
        opened_at=now - timedelta(hours=2),
        closed_at=now - timedelta(hours=1),
        closed_by="Message #41 delivered",
        last_failure_at=now - timedelta(hours=2),
        error="The server refused the message.",
        error_code="554",
        messages_affected=7,
        alert_mail=Incident.AlertMail.SENT,
        alert_connection="primary",
    )
    Incident.objects.create(
        cause=Incident.Cause.HEALTH_CHECK,
        failing_since=now - timedelta(minutes=50),
        opened_at=now - timedelta(minutes=50),
        last_failure_at=now - timedelta(minutes=50),
        error=LONG_ERROR,
        error_code="535 5.7.139",
        hint="SMTP AUTH is disabled for this mailbox or tenant.",
        alert_mail=Incident.AlertMail.FAILED,
        alert_connection="primary",
        alert_note="Not sent: The server refused the login. (535 5.7.139)",
    )


def no_horizontal_scroll(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0


@pytest.mark.parametrize("width", [1280, 400])
def test_the_banner_and_the_history_strip_fit_the_page(admin_page: Page, live_server, width):
    fill_history()
    page = admin_page
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(live_server.url + "/admin/general-settings/mail-server/#health-check")
    page.reload()  # the sign-in left the browser on this page, before the data existed
    expect(page.get_by_test_id("incident-banner")).to_contain_text("Mail is not being delivered")
    expect(page.get_by_test_id("health-run")).to_have_count(30)
    ARTIFACTS.mkdir(exist_ok=True)
    page.get_by_test_id("incident-banner").screenshot(
        path=str(ARTIFACTS / f"incident-banner-{width}px.png")
    )
    page.get_by_test_id("health-check").screenshot(
        path=str(ARTIFACTS / f"health-check-{width}px.png")
    )
    assert no_horizontal_scroll(page)
    strip = page.get_by_test_id("health-strip").bounding_box()
    assert strip is not None and strip["x"] + strip["width"] <= width


@pytest.mark.parametrize("width", [1280, 400])
def test_the_incidents_on_the_email_log_fit_the_page(admin_page: Page, live_server, width):
    fill_history()
    page = admin_page
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(live_server.url + LOG_URL + "#incidents")
    expect(page.get_by_test_id("incident-row")).to_have_count(2)
    ARTIFACTS.mkdir(exist_ok=True)
    page.get_by_test_id("incidents").screenshot(path=str(ARTIFACTS / f"incidents-{width}px.png"))
    assert no_horizontal_scroll(page)


def test_the_banners_link_leads_to_the_fix(admin_page: Page, live_server):
    fill_history()
    admin_page.goto(live_server.url + LOG_URL)
    admin_page.get_by_test_id("incident-fix").click()
    expect(admin_page).to_have_url(live_server.url + "/admin/general-settings/mail-server/")


def refused_account_incident() -> Incident:
    """An open incident whose refused credentials pause sending, and two messages waiting."""
    from tests.log_rows import logged_message

    now = timezone.now()
    for subject in ("Password reset", "Weekly report"):
        logged_message(status="paused", subject=subject)
    return Incident.objects.create(
        cause=Incident.Cause.PERMANENT,
        failing_since=now - timedelta(minutes=20),
        opened_at=now - timedelta(minutes=20),
        last_failure_at=now - timedelta(minutes=20),
        error="The server rejected the sign-in (Microsoft 365: wrong username or password, or "
        "an OAuth token issued for a different account).",
        error_code="535",
        hint="Check the Username and Password.",
        messages_affected=1,
        affects_every_message=True,
        pauses_sending=True,
        alert_mail=Incident.AlertMail.FAILED,
        alert_connection="primary",
    )


@pytest.mark.parametrize("width", [1280, 400])
def test_a_paused_connection_shows_retry_now_and_the_waiting_messages(
    admin_page: Page, live_server, width
):
    refused_account_incident()
    page = admin_page
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(live_server.url + LOG_URL)
    expect(page.get_by_test_id("incident-paused")).to_contain_text("paused")
    expect(page.get_by_test_id("paused-reason")).to_have_count(2)
    ARTIFACTS.mkdir(exist_ok=True)
    page.get_by_test_id("incident-banner").screenshot(
        path=str(ARTIFACTS / f"incident-paused-{width}px.png")
    )
    page.get_by_test_id("log-row").first.screenshot(
        path=str(ARTIFACTS / f"log-row-paused-{width}px.png")
    )
    assert no_horizontal_scroll(page)

    page.get_by_test_id("incident-retry-now").click()
    expect(page.get_by_text("2 waiting messages queued again")).to_be_visible()
    expect(page.get_by_test_id("incident-retry-now")).to_have_count(0)
    expect(page).to_have_url(live_server.url + LOG_URL)
