"""The Mail Server page in Chromium, as an administrator uses it."""

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from settings_app.models import MailServerConfig
from settings_app.sending_methods import show_if
from tests.browser.conftest import log_in
from tests.factories import service_account_json

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def visible(page: Page, selector: str) -> bool:
    return page.locator(selector).is_visible()


def test_navigation_leads_to_the_mail_server_page(admin_page: Page, live_server):
    admin_page.goto(live_server.url + "/")
    admin_page.get_by_role("link", name="Mail Server").click()
    expect(admin_page).to_have_url(live_server.url + "/admin/general-settings/mail-server/")
    expect(admin_page.get_by_test_id("breadcrumb")).to_have_text(
        "Admin General Settings Mail Server", use_inner_text=False
    )
    expect(admin_page.get_by_role("heading", name="Mail Server", exact=True)).to_be_visible()


def test_only_the_chosen_options_fields_are_shown(admin_page: Page):
    page = admin_page
    # SMTP + Basic (the defaults)
    assert visible(page, "#id_server_name") and visible(page, "#id_password")
    assert not visible(page, "#id_oauth_tenant_id") and not visible(page, "#id_api_client_id")
    # SMTP + OAuth + Microsoft
    page.locator("label[for=id_auth_1]").click()
    assert visible(page, "#id_oauth_tenant_id") and visible(page, "#id_username")
    assert not visible(page, "#id_password") and not visible(page, "#id_google_client_id")
    # SMTP + OAuth + Google
    page.locator("label[for=id_oauth_provider_1]").click()
    assert visible(page, "#id_google_client_id") and not visible(page, "#id_username")
    # API + Microsoft: SMTP-only fields are gone, addresses stay
    page.locator("label[for=id_mode_1]").click()
    assert visible(page, "#id_api_tenant_id") and visible(page, "#id_from_address")
    assert visible(page, "#id_admin_address")
    assert not visible(page, "#id_server_name") and not visible(page, "#id_port")
    # API + Google
    page.locator("label[for=id_api_provider_1]").click()
    assert visible(page, "[data-key-input]") and not visible(page, "#id_api_tenant_id")


def test_changing_security_suggests_the_usual_port_until_one_is_typed(admin_page: Page):
    page = admin_page
    expect(page.locator("#id_port")).to_have_value("587")
    page.locator("label[for=id_security_0]").click()  # SSL
    expect(page.locator("#id_port")).to_have_value("465")
    page.locator("label[for=id_security_2]").click()  # None
    expect(page.locator("#id_port")).to_have_value("25")
    page.fill("#id_port", "2525")
    page.locator("label[for=id_security_1]").click()  # TLS
    expect(page.locator("#id_port")).to_have_value("2525")


def test_a_saved_custom_port_is_kept_when_security_changes(admin_page: Page):
    page = admin_page
    fill_smtp_basic(page)
    page.fill("#id_port", "2525")
    page.get_by_test_id("save").click()
    expect(page.get_by_role("alert")).to_contain_text("Settings saved")
    page.reload()
    expect(page.locator("#id_port")).to_have_value("2525")
    page.locator("label[for=id_security_0]").click()  # SSL
    expect(page.locator("#id_port")).to_have_value("2525")


def test_a_saved_usual_port_still_follows_security(admin_page: Page):
    page = admin_page
    fill_smtp_basic(page)
    page.get_by_test_id("save").click()  # TLS, port 587
    expect(page.get_by_role("alert")).to_contain_text("Settings saved")
    page.reload()
    page.locator("label[for=id_security_0]").click()  # SSL
    expect(page.locator("#id_port")).to_have_value("465")


def fill_smtp_basic(page: Page) -> None:
    page.fill("#id_server_name", "smtp.example.com")
    page.fill("#id_from_address", "mailer@example.com")
    page.fill("#id_admin_address", "admin@example.com")
    page.fill("#id_username", "mailer@example.com")
    page.fill("#id_password", "browser-secret-pw")


def test_smtp_basic_settings_are_saved_and_shown_after_reload(admin_page: Page):
    page = admin_page
    fill_smtp_basic(page)
    page.get_by_test_id("save").click()
    expect(page.get_by_role("alert")).to_contain_text("Settings saved")
    page.reload()
    expect(page.locator("#id_server_name")).to_have_value("smtp.example.com")
    expect(page.locator("#id_from_address")).to_have_value("mailer@example.com")
    expect(page.locator("#id_password")).to_have_value("")
    expect(page.locator("#id_password")).to_have_attribute(
        "placeholder", "stored - leave blank to keep"
    )
    assert "browser-secret-pw" not in page.content()
    assert MailServerConfig.load().password == "browser-secret-pw"
    expect(page.get_by_test_id("audit")).to_contain_text("admin")


def test_invalid_form_shows_field_errors_and_keeps_typed_values(admin_page: Page):
    page = admin_page
    fill_smtp_basic(page)
    page.fill("#id_from_address", "not-an-address")
    page.fill("#id_port", "70000")
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("form-errors")).to_contain_text("Nothing was saved")
    expect(page.get_by_test_id("form-errors")).to_contain_text("re-enter Password")
    expect(page.locator("#id_from_address")).to_have_class("textinput form-control is-invalid")
    expect(page.locator("#id_server_name")).to_have_value("smtp.example.com")
    expect(page.locator("#id_password")).to_have_value("")


def test_azure_environment_link_reveals_the_selector(admin_page: Page):
    page = admin_page
    page.locator("label[for=id_auth_1]").click()
    rule = show_if("oauth_azure_environment")  # the Microsoft OAuth section
    box = page.locator(f"[data-show-if='{rule}'] [data-azure-env]")
    expect(box.locator("[data-azure-label]")).to_have_text("Azure Cloud")
    expect(box.locator("select")).to_be_hidden()
    box.get_by_role("link", name="Choose the appropriate Azure environment").click()
    expect(box.locator("select")).to_be_visible()
    box.locator("select").select_option(label="Azure US Government")
    expect(box.locator("[data-azure-label]")).to_have_text("Azure US Government")


def test_json_key_upload_shows_the_service_account(admin_page: Page, tmp_path):
    page = admin_page
    key = tmp_path / "key.json"
    key.write_bytes(service_account_json())
    page.fill("#id_from_address", "mailer@example.com")
    page.fill("#id_admin_address", "admin@example.com")
    page.locator("label[for=id_mode_1]").click()
    page.locator("label[for=id_api_provider_1]").click()
    page.set_input_files("[data-key-input]", str(key))
    expect(page.locator("[data-key-preview]")).to_contain_text(
        "mailer@mail-console-test.iam.gserviceaccount.com"
    )
    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("stored-key")).to_contain_text(
        "mailer@mail-console-test.iam.gserviceaccount.com"
    )
    expect(page.get_by_test_id("stored-key")).to_contain_text("112233445566778899001")


VIEWS = {
    "smtp-basic": [],
    "smtp-oauth-microsoft": ["id_auth_1"],
    "smtp-oauth-google": ["id_auth_1", "id_oauth_provider_1"],
    "api-microsoft": ["id_mode_1"],
    "api-microsoft-certificate": ["id_mode_1", "id_api_credential_type_1"],
    "api-google": ["id_mode_1", "id_api_provider_1"],
}


def save_smtp_basic(page: Page) -> None:
    fill_smtp_basic(page)
    page.get_by_test_id("save").click()
    expect(page.get_by_role("alert")).to_contain_text("Settings saved")


@pytest.mark.parametrize("view", VIEWS)
def test_the_page_is_usable_at_400_pixels(admin_page: Page, view):
    page = admin_page
    save_smtp_basic(page)  # so the change history has an entry
    page.set_viewport_size({"width": 400, "height": 800})
    page.reload()
    for radio in VIEWS[view]:
        page.locator(f"label[for={radio}]").click()
    for summary in page.locator(".help-panel summary").all():
        if summary.is_visible():
            summary.click()  # long scope URLs must wrap too
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    expect(page.get_by_test_id("save")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"mail-server-400px-{view}.png"), full_page=True)


def test_change_history_is_a_table_when_wide_and_cards_at_400_pixels(admin_page: Page):
    page = admin_page
    save_smtp_basic(page)
    audit = page.get_by_test_id("audit")
    expect(audit.get_by_role("columnheader", name="What changed")).to_be_visible()
    page.set_viewport_size({"width": 400, "height": 800})
    changes = audit.locator(".audit-changes").first
    box = changes.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 400
    label = changes.evaluate("cell => getComputedStyle(cell, '::before').content")
    assert label == '"What changed"'
    expect(changes).to_contain_text("Password (changed)")


NO_JS_HEADINGS = [
    "SMTP server",
    "Addresses",
    "Connection and authentication",
    "OAuth",
    "Basic authentication, or OAuth with Microsoft",
    "OAuth with Microsoft",
    "OAuth with Google",
    "Authorization",
    "API",
    "Microsoft Graph",
    "Gmail API",
]
NO_JS_FIELDS = [
    "#id_server_name",
    "#id_port",
    "#id_username",
    "#id_password",
    "#id_oauth_tenant_id",
    "#id_oauth_client_secret",
    "#id_oauth_azure_environment",
    "#id_google_client_id",
    "#id_api_tenant_id",
    "#id_api_client_secret",
    "#id_api_azure_environment",
    "[data-key-input]",
]


def test_without_javascript_every_section_shows_and_api_google_saves(
    browser: Browser, live_server, admin_user, tmp_path
):
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        log_in(page, live_server.url)
        page.wait_for_url("**/mail-server/")
        for heading in NO_JS_HEADINGS:
            expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        for field in NO_JS_FIELDS:
            expect(page.locator(field)).to_be_visible()
        # The Azure "choose" link needs a script; without one the selector itself shows.
        expect(page.get_by_text("Choose the appropriate Azure environment").first).to_be_hidden()

        key = tmp_path / "key.json"
        key.write_bytes(service_account_json())
        page.locator("label[for=id_mode_1]").click()
        page.locator("label[for=id_api_provider_1]").click()
        page.fill("#id_from_address", "mailer@example.com")
        page.fill("#id_admin_address", "admin@example.com")
        page.set_input_files("[data-key-input]", str(key))
        page.get_by_test_id("save").click()
        expect(page.get_by_role("alert")).to_contain_text("Settings saved")
        expect(page.get_by_test_id("stored-key")).to_contain_text(
            "mailer@mail-console-test.iam.gserviceaccount.com"
        )
        config = MailServerConfig.load()
        assert (config.mode, config.api_provider) == ("api", "google")
    finally:
        context.close()


def open_test_mail(page: Page) -> None:
    page.get_by_test_id("test-mail").click()
    expect(page.locator("#test-mail-dialog")).to_be_visible()


def test_test_mail_shows_progress_and_blocks_a_second_send_while_running(admin_page: Page):
    page = admin_page
    fill_smtp_basic(page)
    held: list[Route] = []
    page.route("**/test-mail/", lambda route: held.append(route))  # held until the checks are done
    open_test_mail(page)
    send = page.locator("#test-mail-dialog [data-test-send]")
    progress = page.locator("#test-mail-dialog [data-test-progress]")
    expect(progress).to_be_hidden()
    send.click()
    expect(send).to_be_disabled()
    expect(page.get_by_test_id("test-mail")).to_be_disabled()
    expect(progress).to_be_visible()
    expect(progress).to_have_text("Sending… this takes at most 5 seconds.")
    for _ in range(100):  # the route handler runs while Playwright waits
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1
    held[0].continue_()
    expect(page.get_by_test_id("test-result")).to_be_visible()
    expect(progress).to_be_hidden()
    expect(send).to_be_enabled()


def test_test_mail_with_an_expired_session_says_so_and_keeps_the_form(
    admin_page: Page, live_server, smtp_starttls, trust_test_ca
):
    page = admin_page
    fill_smtp_basic(page)
    page.fill("#id_server_name", "localhost")
    page.fill("#id_port", str(smtp_starttls.port))
    page.fill("#id_username", "alice@example.com")
    page.fill("#id_password", "s3cret")
    page.context.clear_cookies(name="sessionid")
    open_test_mail(page)
    page.locator("#test-mail-dialog [data-test-send]").click()
    problem = page.locator("#test-mail-dialog").get_by_test_id("test-mail-problem")
    expect(problem).to_have_text(
        "Your session has expired: sign in again in another tab, then press Send test mail "
        "again (your form is kept)."
    )
    expect(page).to_have_url(live_server.url + "/admin/general-settings/mail-server/")
    assert not smtp_starttls.messages

    # Signing in again elsewhere gives a new CSRF token; the kept form still sends.
    other_tab = page.context.new_page()
    log_in(other_tab, live_server.url)
    other_tab.wait_for_url("**/mail-server/")
    page.bring_to_front()
    page.locator("#test-mail-dialog [data-test-send]").click()
    expect(page.get_by_test_id("test-outcome")).to_contain_text("Test mail sent")
    assert smtp_starttls.messages[0].rcpt_tos == ["admin@example.com"]
