"""Test Mail and the OAuth consent flows in Chromium, against aiosmtpd and the provider fakes."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from oauth.models import OAuthGrant
from tests.browser.test_mail_server_page import ARTIFACTS
from tests.oauth_helpers import (
    G_CLIENT,
    G_SECRET,
    G_USER,
    MS_CLIENT,
    MS_SECRET,
    MS_TENANT,
    MS_USER,
    register_google,
    register_microsoft,
    xoauth2_server,
)


def fill_smtp(page: Page, port: int, username: str, password: str = "") -> None:
    page.fill("#id_server_name", "localhost")
    page.fill("#id_port", str(port))
    page.fill("#id_from_address", username)
    page.fill("#id_admin_address", "admin@example.com")
    page.fill("#id_username", username)
    if password:
        page.fill("#id_password", password)


def run_test_mail(page: Page) -> None:
    page.get_by_test_id("test-mail").click()
    dialog = page.locator("#test-mail-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#id_test_recipient")).to_have_value("admin@example.com")
    dialog.locator("[data-test-send]").click()


def test_test_mail_smtp_basic_success_then_wrong_password(
    admin_page: Page, smtp_starttls, trust_test_ca
):
    page = admin_page
    fill_smtp(page, smtp_starttls.port, "alice@example.com", "s3cret")
    run_test_mail(page)
    result = page.get_by_test_id("test-result")
    expect(result.get_by_test_id("test-outcome")).to_contain_text("Test mail sent")
    expect(result.get_by_test_id("transcript")).to_contain_text("STARTTLS")
    expect(result.get_by_test_id("transcript")).to_contain_text("Certificate valid until")
    assert smtp_starttls.messages[0].rcpt_tos == ["admin@example.com"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "test-mail-success.png"))

    page.locator("#test-mail-dialog .btn-close").click()
    expect(page.locator("#test-mail-dialog")).to_be_hidden()
    page.fill("#id_password", "wrong-password")
    run_test_mail(page)
    expect(result.get_by_test_id("test-outcome")).to_contain_text("Test mail failed")
    expect(result.get_by_test_id("hint")).to_contain_text("Check the Username and Password")
    assert "wrong-password" not in result.inner_html()
    page.screenshot(path=str(ARTIFACTS / "test-mail-failure.png"))


def test_test_mail_to_another_server_asks_for_the_password_again(
    admin_page: Page, smtp_starttls, smtp_plain, trust_test_ca
):
    page = admin_page
    fill_smtp(page, smtp_starttls.port, "alice@example.com", "s3cret")
    page.get_by_test_id("save").click()
    expect(page.get_by_role("alert").first).to_contain_text("Settings saved")
    page.fill("#id_port", str(smtp_plain.port))  # a listener without TLS
    page.get_by_role("radiogroup", name="Connection Security").get_by_text("None").click()
    run_test_mail(page)
    result = page.get_by_test_id("test-result")
    expect(result).to_contain_text("Nothing was sent")
    expect(result).to_contain_text("Password: Port Number or Connection Security changed")
    expect(result).to_contain_text("enter the password again")
    assert smtp_plain.connections == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "test-mail-password-again.png"))

    page.reload()
    history = page.get_by_test_id("audit")
    expect(history).to_contain_text("Test Mail; to SMTP (Server Name or IP localhost")
    expect(history).to_contain_text("no stored secret used; not sent: to correct first: Password")
    page.set_viewport_size({"width": 400, "height": 900})
    history.screenshot(path=str(ARTIFACTS / "change-history-test-mail-400.png"))


def choose_oauth(page: Page, provider: str) -> None:
    page.locator("label[for=id_auth_1]").click()
    page.get_by_role("radiogroup", name="Mail Provider").first.get_by_text(provider).click()


def test_microsoft_consent_end_to_end_then_test_mail_over_xoauth2(
    admin_page: Page, live_server, microsoft_fake, smtp_server_factory
):
    page = admin_page
    register_microsoft(microsoft_fake, live_server.url + "/RestAPI/WC/OAuthSetting")
    server = xoauth2_server(smtp_server_factory, microsoft_fake, MS_USER, "SMTP.Send")
    fill_smtp(page, server.port, MS_USER)
    choose_oauth(page, "Microsoft")
    expect(page.get_by_test_id("redirect-uri")).to_have_value(
        live_server.url + "/RestAPI/WC/OAuthSetting"
    )
    page.fill("#id_oauth_tenant_id", MS_TENANT)
    page.fill("#id_oauth_client_id", MS_CLIENT)
    page.fill("#id_oauth_client_secret", MS_SECRET)
    page.get_by_test_id("save").click()  # Save Settings goes to consent when no grant exists
    page.wait_for_url("**/admin/general-settings/mail-server/")
    expect(page.get_by_test_id("grant-status")).to_contain_text(f"Authorized as {MS_USER}")
    assert OAuthGrant.objects.get().account == MS_USER
    expect(page.get_by_test_id("authorize")).to_have_text("Save and Reconnect")
    expect(page.get_by_test_id("disconnect")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.get_by_test_id("grant-status").screenshot(path=str(ARTIFACTS / "oauth-authorized.png"))

    run_test_mail(page)
    result = page.get_by_test_id("test-result")
    expect(result.get_by_test_id("test-outcome")).to_contain_text("Test mail sent")
    expect(result.get_by_test_id("transcript")).to_contain_text("AUTH XOAUTH2 as")
    page.screenshot(path=str(ARTIFACTS / "test-mail-xoauth2.png"))
    assert server.auth_mechanisms == ["XOAUTH2"]


def test_google_configure_end_to_end_then_check_and_test_mail(
    admin_page: Page, live_server, google_fake, smtp_server_factory
):
    page = admin_page
    register_google(google_fake, live_server.url + "/RestAPI/WC/OAuthSetting")
    google_fake.next_consent_user = G_USER
    server = xoauth2_server(smtp_server_factory, google_fake, G_USER, "https://mail.google.com/")
    fill_smtp(page, server.port, G_USER)
    choose_oauth(page, "Google")
    page.fill("#id_google_client_id", G_CLIENT)
    page.fill("#id_google_client_secret", G_SECRET)
    page.get_by_test_id("configure").click()
    page.wait_for_url("**/admin/general-settings/mail-server/")
    expect(page.get_by_test_id("grant-status")).to_contain_text(f"Authorized as {G_USER}")
    expect(page.get_by_test_id("configure")).to_have_text("Save and Reconnect")
    expect(page.get_by_test_id("disconnect")).to_be_visible()
    page.get_by_test_id("check").click()
    expect(page.get_by_role("alert").filter(has_text="Check passed")).to_be_visible()
    assert google_fake.tokens_issued["refresh_token"] == 1

    run_test_mail(page)
    result = page.get_by_test_id("test-result")
    expect(result.get_by_test_id("test-outcome")).to_contain_text("Test mail sent")
    assert server.auth_mechanisms == ["XOAUTH2"]
