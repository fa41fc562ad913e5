"""The "No mail worker is running" banner and the Email Log's workers, in Chromium at 1280
and 400 pixels."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import Page, expect

from sender.models import WorkerHeartbeat
from tests.log_rows import LOG_URL

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PAGE_URL = "/admin/general-settings/mail-server/"


@pytest.fixture(autouse=True)
def queued_backend(settings):
    settings.EMAIL_BACKEND = "sender.backend.EmailBackend"
    settings.MAILCONFIG_DELIVERY = "queued"


def worker(host: str, seconds_ago: float, sent: int = 0) -> WorkerHeartbeat:
    seen = timezone.now() - timedelta(seconds=seconds_ago)
    return WorkerHeartbeat.objects.create(
        host=host,
        pid=31337,
        started_at=seen - timedelta(hours=3),
        last_seen=seen,
        messages_sent=sent,
    )


def no_sideways_scroll(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0


@pytest.mark.parametrize("width", [1280, 400])
def test_the_banner_reads_at_every_width_and_goes_when_a_worker_is_back(
    admin_page: Page, live_server, width
):
    worker("mail-worker-01.example.internal", seconds_ago=600)
    for i in range(3):
        mail.send_mail(f"Alert {i}", "Body", None, [f"ops{i}@example.com"])
    page = admin_page
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(live_server.url + PAGE_URL)
    banner = page.get_by_test_id("no-worker-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("No mail worker is running")
    expect(banner).to_contain_text("3 messages waiting")
    expect(banner).to_contain_text("python manage.py db_worker")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"no-worker-banner-{width}px.png"), full_page=True)
    banner.screenshot(path=str(ARTIFACTS / f"no-worker-banner-only-{width}px.png"))
    assert no_sideways_scroll(page)
    box = banner.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width

    banner.get_by_role("link", name="Workers in the Email Log").click()
    expect(page.get_by_test_id("workers-empty")).to_contain_text("One was last seen")
    page.screenshot(path=str(ARTIFACTS / f"no-worker-log-{width}px.png"), full_page=True)
    assert no_sideways_scroll(page)

    worker("mail-worker-02.example.internal", seconds_ago=2, sent=1250)
    page.reload()
    expect(page.get_by_test_id("no-worker-banner")).to_have_count(0)
    expect(page.get_by_test_id("workers-summary")).to_contain_text("1 running")
    expect(page.get_by_test_id("worker-row")).to_contain_text(" s ago")
    page.get_by_test_id("workers").screenshot(
        path=str(ARTIFACTS / f"email-log-workers-{width}px.png")
    )
    assert no_sideways_scroll(page)


def test_the_email_log_lists_workers_on_several_hosts(admin_page: Page, live_server):
    worker("mail-worker-01.example.internal", seconds_ago=3, sent=48210)
    worker("mail-worker-02.example.internal", seconds_ago=1, sent=47977)
    admin_page.goto(live_server.url + LOG_URL)
    expect(admin_page.get_by_test_id("workers-summary")).to_contain_text("2 running on 2 hosts")
    expect(admin_page.get_by_test_id("worker-row")).to_have_count(2)
