"""Check permissions in Chromium: the button beside Test Mail opens a dialog with the findings."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.test_mail_server_page import ARTIFACTS
from tests.browser.test_sending_and_oauth import fill_smtp


def test_check_permissions_lists_what_the_smtp_server_offers_and_sends_nothing(
    admin_page: Page, smtp_starttls, trust_test_ca
):
    page = admin_page
    fill_smtp(page, smtp_starttls.port, "alice@example.com", "s3cret")

    page.get_by_test_id("check-permissions").click()

    dialog = page.locator("#permission-check-dialog")
    expect(dialog).to_be_visible()
    findings = dialog.get_by_test_id("findings")
    expect(findings).to_contain_text(
        "The server offers AUTH after STARTTLS: LOGIN, PLAIN, XOAUTH2."
    )
    expect(findings).to_contain_text("Login as alice@example.com with the password accepted")
    expect(findings.locator("li[data-status=ok]")).to_have_count(3)
    assert smtp_starttls.messages == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "check-permissions.png"))

    page.locator("#permission-check-dialog .btn-close").click()
    smtp_starttls.injections.offer_auth = False
    page.get_by_test_id("check-permissions").click()
    failure = dialog.locator("li[data-status=fail]")
    expect(failure).to_have_count(1)
    expect(failure).to_contain_text("SMTP AUTH is disabled")
    expect(failure.get_by_test_id("hint")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "check-permissions-no-auth.png"))
