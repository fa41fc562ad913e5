"""The Email Log's delivery summary in Chromium: charts, numbers and failures at 1280 and 400 px."""

from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from tests.delivery_log import fill_delivery_log
from tests.log_rows import LOG_URL

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def no_horizontal_scroll(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0


@pytest.mark.parametrize("width", [1280, 400])
@pytest.mark.parametrize("period", ["24h", "30d"])
def test_the_summary_reads_without_sideways_scrolling(admin_page: Page, live_server, width, period):
    fill_delivery_log(timezone.now(), days=3)
    page = admin_page
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{live_server.url}{LOG_URL}?summary={period}")
    ARTIFACTS.mkdir(exist_ok=True)
    overview = page.get_by_test_id("delivery-overview")
    expect(overview.get_by_role("img", name="Messages queued per")).to_be_visible()
    expect(overview.get_by_role("img", name="Delivery time from queued to sent")).to_be_visible()
    overview.screenshot(path=str(ARTIFACTS / f"delivery-charts-{period}-{width}px.png"))
    overview.get_by_text("Show the numbers").click()
    expect(overview.get_by_test_id("numbers-total")).to_be_visible()
    numbers = overview.get_by_test_id("summary-numbers")
    numbers.screenshot(path=str(ARTIFACTS / f"delivery-numbers-{period}-{width}px.png"))
    numbers.evaluate("element => element.scrollIntoView()")
    box = numbers.bounding_box()
    assert box is not None
    page.screenshot(  # its first lines, to look at
        path=str(ARTIFACTS / f"delivery-numbers-top-{period}-{width}px.png"),
        clip={"x": box["x"], "y": box["y"], "width": box["width"], "height": 500},
    )
    failures = page.get_by_test_id("delivery-failures")
    failures.screenshot(path=str(ARTIFACTS / f"delivery-failures-{period}-{width}px.png"))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(
        path=str(ARTIFACTS / f"delivery-summary-{period}-{width}px.png"), full_page=True
    )
    assert no_horizontal_scroll(page)


def test_a_failing_domain_opens_the_log_filtered_to_it(admin_page: Page, live_server):
    fill_delivery_log(timezone.now(), days=1)
    page = admin_page
    page.goto(live_server.url + LOG_URL)
    domains = page.get_by_test_id("top-domains")
    count = int(domains.locator(".failure-count").first.inner_text().split()[0])
    domains.get_by_role("link").first.click()
    expect(page.get_by_test_id("drill-down-domain")).to_be_visible()
    expect(page.get_by_test_id("log-row")).to_have_count(min(count, 50))
    page.get_by_test_id("apply-filters").click()  # the form keeps the drill-down
    expect(page.get_by_test_id("drill-down-domain")).to_be_visible()
    page.get_by_role("link", name="Remove the filter: To a recipient at").click()
    expect(page.get_by_test_id("drill-down-domain")).to_have_count(0)


@pytest.mark.parametrize("width", [1280, 400])
def test_the_mail_server_page_shows_a_24_hour_sparkline(admin_page: Page, live_server, width):
    fill_delivery_log(timezone.now(), days=1)
    page = admin_page
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(live_server.url + "/admin/general-settings/mail-server/")
    line = page.get_by_test_id("delivery-summary")
    expect(line.get_by_role("img", name="Last 24 hours, hour by hour")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    line.screenshot(path=str(ARTIFACTS / f"delivery-sparkline-{width}px.png"))
    assert no_horizontal_scroll(page)
