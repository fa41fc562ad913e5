"""A certificate credential uploaded through the page, and the expiry radar's banner, in Chromium."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from settings_app.models import MailServerConfig
from tests.certificates import cert_pem, key_pem, rsa_key, self_signed, sha1_thumbprint
from tests.test_api_transports import CLIENT_ID, TENANT

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def choose_pem_and_save(page: Page, input_test_id: str, file_name: str, certificate) -> None:
    """Put a PEM file with a new key and ``certificate`` in the file input, then Save."""
    page.get_by_test_id(input_test_id).set_input_files(
        {
            "name": file_name,
            "mimeType": "application/x-pem-file",
            "buffer": key_pem(rsa_key()) + cert_pem(certificate),
        }
    )
    page.get_by_test_id("save").click()


def upload_certificate(page: Page, certificate) -> None:
    page.locator("label[for=id_mode_1]").click()  # API
    page.locator("label[for=id_api_credential_type_1]").click()  # Certificate
    page.fill("#id_from_address", "mailer@contoso.com")
    page.fill("#id_admin_address", "admin@contoso.com")
    page.fill("#id_api_tenant_id", TENANT)
    page.fill("#id_api_client_id", CLIENT_ID)
    choose_pem_and_save(page, "certificate-input", "mail-console.pem", certificate)


@pytest.mark.parametrize("width", [1280, 400])
def test_a_stored_certificate_and_its_expiry_banner(admin_page: Page, width: int):
    page = admin_page
    certificate = self_signed(rsa_key(), expires_at=datetime.now(UTC) + timedelta(days=5, hours=1))
    upload_certificate(page, certificate)
    expect(page.get_by_role("alert").filter(has_text="Settings saved")).to_be_visible()
    assert MailServerConfig.load().api_credential_type == "certificate"
    stored = page.get_by_test_id("stored-certificate")
    expect(stored).to_contain_text("CN=mail-console")
    expect(stored).to_contain_text(sha1_thumbprint(certificate))
    expect(stored).to_contain_text(f"{certificate.not_valid_after_utc:%Y-%m-%d}")
    banner = page.get_by_test_id("expiry-banner")
    expect(banner).to_contain_text(
        "The Azure app's certificate (CN=mail-console) expires in 5 days"
    )
    expect(banner).to_have_attribute("data-severity", "warning")
    page.set_viewport_size({"width": width, "height": 900})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"certificate-radar-{width}px.png"), full_page=True)
    # The banner's link leads to the credential on the page.
    banner.get_by_role("link", name="Go to the setting").click()
    expect(page).to_have_url(re.compile(r"#api-credential$"))


def test_an_expired_certificate_is_refused_on_the_page(admin_page: Page):
    page = admin_page
    expired = self_signed(rsa_key(), expires_at=datetime.now(UTC) - timedelta(days=1))
    upload_certificate(page, expired)
    expect(page.get_by_test_id("certificate-error")).to_contain_text("This certificate expired on")
    expect(page.get_by_test_id("certificate-input")).to_be_visible()


def upload_smtp_certificate(page: Page, certificate) -> None:
    """SMTP, OAuth with Microsoft, Sign-in: Application, Credential: Certificate; save."""
    page.locator("label[for=id_auth_1]").click()  # OAuth (Microsoft is the default provider)
    page.locator("label[for=id_oauth_sign_in_1]").click()  # Application
    page.locator("label[for=id_oauth_credential_type_1]").click()  # Certificate
    expect(page.locator("#id_oauth_client_secret")).to_be_hidden()
    page.fill("#id_server_name", "smtp.office365.com")
    page.fill("#id_from_address", "mailer@contoso.com")
    page.fill("#id_admin_address", "admin@contoso.com")
    page.fill("#id_username", "mailer@contoso.com")
    page.fill("#id_oauth_tenant_id", TENANT)
    page.fill("#id_oauth_client_id", CLIENT_ID)
    choose_pem_and_save(page, "smtp-certificate-input", "smtp-mailer.pem", certificate)


@pytest.mark.parametrize("width", [1280, 400])
def test_the_smtp_application_certificate_section(admin_page: Page, width: int):
    page = admin_page
    certificate = self_signed(
        rsa_key(), subject="smtp-mailer", expires_at=datetime.now(UTC) + timedelta(days=5, hours=1)
    )
    upload_smtp_certificate(page, certificate)
    expect(page.get_by_role("alert").filter(has_text="Settings saved")).to_be_visible()
    config = MailServerConfig.load()
    assert (config.oauth_sign_in, config.oauth_credential_type) == ("application", "certificate")
    page.set_viewport_size({"width": width, "height": 900})
    page.reload()
    section = page.locator("#smtp-oauth")
    stored = page.get_by_test_id("stored-smtp-certificate")
    expect(stored).to_be_visible()
    expect(stored).to_contain_text("CN=smtp-mailer")
    expect(stored).to_contain_text(sha1_thumbprint(certificate))
    expect(stored).to_contain_text(f"{certificate.not_valid_after_utc:%Y-%m-%d}")
    expect(page.locator("#id_oauth_client_secret")).to_be_hidden()
    expect(page.get_by_test_id("certificate-input")).to_be_hidden()  # Graph's, in API mode
    expect(page.get_by_test_id("app-only-panel")).to_be_visible()
    banner = page.get_by_test_id("expiry-banner")
    expect(banner).to_contain_text(
        "The Azure app's certificate for SMTP (CN=smtp-mailer) expires in 5 days"
    )
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    ARTIFACTS.mkdir(exist_ok=True)
    section.screenshot(path=str(ARTIFACTS / f"smtp-app-certificate-{width}px.png"))
    # The banner's link leads to the SMTP credential.
    banner.get_by_role("link", name="Go to the setting").click()
    expect(page).to_have_url(re.compile(r"#smtp-credential$"))
    # Choosing Client Secret again shows the secret, not the certificate.
    page.locator("label[for=id_oauth_credential_type_0]").click()
    expect(page.locator("#id_oauth_client_secret")).to_be_visible()
    expect(stored).to_be_hidden()


def test_an_expired_smtp_certificate_is_refused_on_the_page(admin_page: Page):
    page = admin_page
    expired = self_signed(rsa_key(), expires_at=datetime.now(UTC) - timedelta(days=1))
    upload_smtp_certificate(page, expired)
    expect(page.get_by_test_id("smtp-certificate-error")).to_contain_text(
        "This certificate expired on"
    )
    expect(page.get_by_test_id("smtp-certificate-input")).to_be_visible()
