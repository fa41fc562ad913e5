"""The Basic-auth sunset warning and the one-click switch, in Chromium."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.conftest import log_in
from tests.factories import store

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PAGE = "/admin/general-settings/mail-server/"


def type_basic_auth_to_microsoft_365(page: Page) -> None:
    page.fill("#id_from_address", "alerts@contoso.com")
    page.fill("#id_admin_address", "it@contoso.com")
    page.fill("#id_username", "alerts@contoso.com")
    page.fill("#id_password", "browser-secret-pw")
    page.locator("#id_server_name").press_sequentially("smtp.office365.com")


def test_the_warning_appears_while_typing_a_microsoft_365_server_with_basic_auth(
    admin_page: Page,
):
    page = admin_page
    warning = page.get_by_test_id("basic-auth-retirement")
    page.fill("#id_username", "alerts@contoso.com")
    page.locator("#id_server_name").press_sequentially("smtp.office365.c")
    expect(warning).to_be_hidden()
    page.locator("#id_server_name").press_sequentially("om")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text(
        "Mail through Microsoft 365 will stop at the end of December 2026"
    )
    expect(warning).to_contain_text("31 December 2026")
    expect(warning).to_contain_text("550 5.7.30")
    warning.screenshot(path=str(ARTIFACTS / "sunset-warning-1280.png"))
    page.fill("#id_username", "")  # no username: no login, nothing to stop
    expect(warning).to_be_hidden()
    page.fill("#id_username", "alerts@contoso.com")
    expect(warning).to_be_visible()
    page.locator("label[for=id_auth_1]").click()  # OAuth
    page.locator("label[for=id_auth_0]").click()  # back to Basic
    expect(warning).to_be_visible()
    page.fill("#id_server_name", "smtp.example.com")
    expect(warning).to_be_hidden()


def test_switch_to_oauth_keeps_the_addresses_and_username_and_leads_to_the_new_fields(
    admin_page: Page,
):
    page = admin_page
    type_basic_auth_to_microsoft_365(page)
    page.get_by_test_id("switch-to-oauth").click()

    expect(page.locator("#id_auth_1")).to_be_checked()
    expect(page.locator("#id_oauth_provider_0")).to_be_checked()
    expect(page.locator("#id_from_address")).to_have_value("alerts@contoso.com")
    expect(page.locator("#id_admin_address")).to_have_value("it@contoso.com")
    expect(page.locator("#id_username")).to_have_value("alerts@contoso.com")
    expect(page.locator("#id_username")).to_be_visible()
    expect(page.locator("#id_server_name")).to_have_value("smtp.office365.com")
    guide = page.get_by_test_id("switch-guide-smtp_oauth_microsoft")
    expect(guide).to_be_visible()
    expect(guide).to_contain_text("Now fill in Tenant ID, Client ID, Client Secret")
    for field in ("#id_oauth_tenant_id", "#id_oauth_client_id", "#id_oauth_client_secret"):
        expect(page.locator(field)).to_be_visible()
        expect(page.locator(field)).to_have_class(re.compile(r"\bswitch-new-field\b"))
    expect(page.locator("#id_oauth_tenant_id")).to_be_focused()
    expect(page.get_by_test_id("basic-auth-retirement")).to_be_hidden()
    expect(page.locator("#id_password")).to_be_hidden()
    page.screenshot(path=str(ARTIFACTS / "sunset-switched-to-oauth-1280.png"), full_page=True)


def test_switch_to_graph_keeps_the_addresses_and_username_and_shows_the_graph_fields(
    admin_page: Page,
):
    page = admin_page
    type_basic_auth_to_microsoft_365(page)
    page.get_by_test_id("switch-to-graph").click()

    expect(page.locator("#id_mode_1")).to_be_checked()
    expect(page.locator("#id_api_provider_0")).to_be_checked()
    expect(page.locator("#id_from_address")).to_have_value("alerts@contoso.com")
    expect(page.locator("#id_admin_address")).to_have_value("it@contoso.com")
    expect(page.locator("#id_username")).to_have_value("alerts@contoso.com")  # kept, unused
    guide = page.get_by_test_id("switch-guide-api_microsoft")
    expect(guide).to_be_visible()
    expect(guide).to_contain_text("Mail.Send")
    expect(page.locator("#id_api_tenant_id")).to_be_visible()
    expect(page.locator("#id_api_tenant_id")).to_be_focused()
    expect(page.locator("#id_server_name")).to_be_hidden()


def test_application_sign_in_needs_no_authorization(admin_page: Page):
    page = admin_page
    page.locator("label[for=id_auth_1]").click()  # OAuth, Microsoft
    expect(page.get_by_test_id("authorize")).to_be_visible()
    page.locator("label[for=id_oauth_sign_in_1]").click()  # Application
    panel = page.get_by_test_id("app-only-panel")
    expect(panel).to_be_visible()
    expect(panel).to_contain_text("None needed")
    expect(panel).to_contain_text("https://outlook.office365.com/.default")
    expect(page.get_by_test_id("authorize")).to_be_hidden()
    expect(page.get_by_test_id("redirect-uri")).to_be_hidden()
    page.get_by_test_id("app-only-help").locator("summary").click()
    expect(page.get_by_test_id("app-only-help")).to_contain_text("New-ServicePrincipal")
    # The scope follows the Azure environment.
    page.locator("[data-azure-choose]").first.click()
    page.select_option("#id_oauth_azure_environment", "azure_us_government")
    expect(panel).to_contain_text("https://outlook.office365.us/.default")
    page.screenshot(path=str(ARTIFACTS / "smtp-oauth-application-1280.png"), full_page=True)


def test_the_banner_and_warning_at_400_px(page: Page, live_server, admin_user):
    store(server_name="smtp.office365.com", port=587, username="alerts@contoso.com")
    page.set_viewport_size({"width": 400, "height": 900})
    log_in(page, live_server.url)
    page.wait_for_url("**" + PAGE)
    banner = page.get_by_test_id("basic-auth-sunset-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Mail will stop at the end of December 2026")
    banner.get_by_role("link").click()
    expect(page.get_by_test_id("basic-auth-retirement")).to_be_visible()
    # Nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
    page.screenshot(path=str(ARTIFACTS / "sunset-400.png"), full_page=True)
    page.get_by_test_id("switch-to-oauth").click()
    expect(page.locator("#id_oauth_tenant_id")).to_be_focused()
    page.screenshot(path=str(ARTIFACTS / "sunset-switched-400.png"), full_page=True)
