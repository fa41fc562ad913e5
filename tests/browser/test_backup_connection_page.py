"""The Backup Connection page in Chromium: reached from the navigation, the same form and
script as the Mail Server page, saved and tested against its own server, at 1280 and 400 px."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from settings_app.models import Connection, MailServerConfig
from tests.backup_helpers import BACKUP_PASSWORD, BACKUP_USER, backup_server_users
from tests.browser.test_mail_server_page import ARTIFACTS
from tests.browser.test_sending_and_oauth import fill_smtp, run_test_mail

BACKUP_PATH = "/admin/general-settings/mail-server/backup/"


@pytest.fixture
def backup_page(admin_page: Page, live_server) -> Page:
    admin_page.get_by_role("link", name="Backup Connection", exact=True).click()
    expect(admin_page).to_have_url(live_server.url + BACKUP_PATH)
    return admin_page


@pytest.fixture
def backup_server(smtp_server_factory, trust_test_ca):
    return smtp_server_factory(security="starttls", users=backup_server_users())


def save_backup(page: Page, port: int) -> None:
    fill_smtp(page, port, BACKUP_USER, BACKUP_PASSWORD)
    page.get_by_label("Use the backup connection when the primary fails").check()
    page.get_by_test_id("save").click()
    expect(page.get_by_role("alert").first).to_contain_text("Settings saved")


def test_the_navigation_leads_to_the_backup_connection_page(backup_page: Page):
    expect(backup_page.get_by_test_id("breadcrumb")).to_have_text(
        "Admin General Settings Backup Connection", use_inner_text=False
    )
    expect(backup_page.get_by_role("heading", name="Backup Connection", exact=True)).to_be_visible()
    expect(
        backup_page.get_by_label("Use the backup connection when the primary fails")
    ).to_be_visible()


def test_the_mail_server_page_links_to_the_backup_page(admin_page: Page, live_server):
    admin_page.get_by_test_id("backup-link").click()
    expect(admin_page).to_have_url(live_server.url + BACKUP_PATH)


def test_the_backup_page_shows_only_the_chosen_options_fields(backup_page: Page):
    page = backup_page
    assert page.locator("#id_password").is_visible()
    page.locator("label[for=id_auth_1]").click()  # OAuth
    assert page.locator("#id_oauth_tenant_id").is_visible()
    assert not page.locator("#id_password").is_visible()
    expect(page.get_by_test_id("redirect-uri")).to_have_value(
        page.url.split("/admin/")[0] + "/RestAPI/WC/OAuthSetting"
    )
    page.locator("label[for=id_mode_1]").click()  # API
    assert page.locator("#id_api_client_id").is_visible()
    assert not page.locator("#id_server_name").is_visible()


def test_the_backup_is_saved_tested_and_recorded_on_its_own_page(
    backup_page: Page, live_server, backup_server
):
    page = backup_page
    save_backup(page, backup_server.port)
    stored = MailServerConfig.load(Connection.BACKUP)
    assert stored.use_when_primary_fails and stored.password == BACKUP_PASSWORD
    assert not MailServerConfig.load().is_configured  # the primary is untouched

    run_test_mail(page)  # the password field is blank: the backup's stored one is used
    result = page.get_by_test_id("test-result")
    expect(result.get_by_test_id("test-outcome")).to_contain_text("Test mail sent")
    (received,) = backup_server.messages
    assert received.auth_user == BACKUP_USER

    page.reload()
    history = page.get_by_test_id("audit")
    expect(history).to_contain_text("Backup connection: Saved settings")
    expect(history).to_contain_text("Backup connection: Test Mail")
    page.goto(live_server.url + "/admin/general-settings/mail-server/")
    expect(page.get_by_test_id("backup-status")).to_contain_text("stands by")
    expect(page.get_by_test_id("audit")).not_to_contain_text("Backup connection")


@pytest.mark.parametrize("width", [1280, 400])
def test_the_backup_page_at_1280_and_400_pixels(backup_page: Page, backup_server, width):
    page = backup_page
    save_backup(page, backup_server.port)
    page.set_viewport_size({"width": width, "height": 900})
    page.reload()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    expect(page.get_by_test_id("failover-switch")).to_be_visible()
    expect(page.get_by_test_id("save")).to_be_visible()
    switch = page.get_by_test_id("failover-switch").bounding_box()
    assert switch is not None and switch["x"] >= 0 and switch["x"] + switch["width"] <= width
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"backup-connection-{width}px.png"), full_page=True)
