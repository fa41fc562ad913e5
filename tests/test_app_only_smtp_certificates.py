"""App-only SMTP (SMTP OAuth, Microsoft, Sign-in: Application) with Credential: Certificate.

The upload goes through the same checks as Graph's (settings_app.certificates). MSAL
signs a client assertion with the stored key; the Microsoft identity fake verifies it
as Entra ID does (x5t#S256 names a certificate registered on the app, the signature
verifies) before it issues the client-credentials token, and the Exchange-like SMTP
server accepts only that token, for the mailbox the app was given.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.core.management import call_command

from sender.factory import smtp_token_provider
from settings_app.expiry_radar import Severity, radar
from settings_app.models import AuditEntry, MailServerConfig
from settings_app.values import MailSettings
from tests.certificates import (
    assert_signed_with,
    cert_pem,
    pem_upload,
    pkcs12_upload,
    register_certificate_only_app,
    rsa_key,
    self_signed,
    sha1_thumbprint,
    sha256_thumbprint,
    stored_certificate_fields,
    stored_column,
)
from tests.factories import PAGE_URL, store
from tests.html import elements
from tests.oauth_helpers import MS_CLIENT, MS_TENANT, MS_USER, microsoft_post

pytestmark = pytest.mark.django_db
TEST_URL = PAGE_URL + "test-mail/"
FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}
OTHER_TENANT = "11111111-2222-4333-8444-555566667777"


@pytest.fixture
def exchange(microsoft_fake, exchange_app_only_smtp):
    """An app that knows only its certificate (no client secret), with SMTP.SendAsApp and
    FullAccess on the Username mailbox."""
    certificate = register_certificate_only_app(
        microsoft_fake, MS_TENANT, MS_CLIENT, subject="smtp-mailer", roles=("SMTP.SendAsApp",)
    )
    server = exchange_app_only_smtp()
    server.grant_mailbox(MS_USER, MS_CLIENT)
    server.certificate = certificate
    return server


def certificate_post(port: int = 587, upload=None, **overrides) -> dict:
    """The form in SMTP mode, OAuth with Microsoft, Sign-in: Application, Credential: Certificate."""
    values = {
        "oauth_sign_in": "application",
        "oauth_credential_type": "certificate",
        "oauth_client_secret": "",
    }
    post = microsoft_post(port, **(values | overrides))
    if upload is not None:
        post["oauth_certificate"] = upload
    return post


def store_certificate(server, key=None, certificate=None, **overrides) -> MailServerConfig:
    """App-only SMTP with a certificate, saved the way the page stores it (one PEM, encrypted)."""
    values = {
        "mode": "smtp",
        "server_name": "localhost",
        "port": server.port,
        "security": "tls",
        "auth": "oauth",
        "oauth_provider": "microsoft",
        "oauth_sign_in": "application",
        "oauth_credential_type": "certificate",
        "username": MS_USER,
        "from_address": MS_USER,
        "admin_address": "admin@contoso.com",
        "oauth_tenant_id": MS_TENANT,
        "oauth_client_id": MS_CLIENT,
    }
    return store(**(values | stored_certificate_fields("oauth", key, certificate) | overrides))


# -- upload ----------------------------------------------------------------------------


def test_a_pem_with_key_and_certificate_is_stored_encrypted_with_its_facts(admin_client):
    certificate = self_signed(rsa_key(), subject="smtp-mailer.contoso.com")

    response = admin_client.post(
        PAGE_URL, certificate_post(upload=pem_upload(rsa_key(), certificate))
    )

    assert response.status_code == 302
    config = MailServerConfig.load()
    assert (config.oauth_sign_in, config.oauth_credential_type) == ("application", "certificate")
    assert config.oauth_certificate.startswith("-----BEGIN PRIVATE KEY-----")
    assert config.oauth_certificate_subject == "CN=smtp-mailer.contoso.com"
    assert config.oauth_certificate_thumbprint == sha1_thumbprint(certificate)
    assert config.oauth_certificate_thumbprint_sha256 == sha256_thumbprint(certificate)
    assert config.oauth_certificate_expires_at == certificate.not_valid_after_utc
    assert config.api_certificate == ""  # Graph's credential is another one
    raw = stored_column("oauth_certificate")
    assert "PRIVATE KEY" not in raw and "CERTIFICATE" not in raw
    changed = AuditEntry.objects.first().changed_fields
    assert "Microsoft OAuth Certificate (changed)" in changed
    assert "Microsoft OAuth Credential" in changed


def test_the_page_shows_subject_thumbprints_and_expiry_but_never_the_certificate(admin_client):
    certificate = self_signed(rsa_key(), subject="smtp-mailer.contoso.com")
    admin_client.post(PAGE_URL, certificate_post(upload=pem_upload(rsa_key(), certificate)))

    body = admin_client.get(PAGE_URL).content.decode()

    assert 'data-testid="stored-smtp-certificate"' in body
    assert "CN=smtp-mailer.contoso.com" in body
    assert sha1_thumbprint(certificate) in body
    assert sha256_thumbprint(certificate) in body
    assert f"{certificate.not_valid_after_utc:%Y-%m-%d}" in body
    assert "PRIVATE KEY" not in body and "BEGIN CERTIFICATE" not in body


def test_a_pkcs12_file_opens_with_the_smtp_certificate_password(admin_client):
    certificate = self_signed(rsa_key())
    post = certificate_post(
        upload=pkcs12_upload(rsa_key(), certificate, password="pfx-pass"),
        oauth_certificate_password="pfx-pass",
    )

    assert admin_client.post(PAGE_URL, post).status_code == 302

    assert MailServerConfig.load().oauth_certificate_thumbprint == sha1_thumbprint(certificate)
    assert "pfx-pass" not in str(AuditEntry.objects.first().changed_fields)


def test_an_expired_certificate_is_refused_at_upload(admin_client):
    expired = self_signed(rsa_key(), expires_at=datetime.now(UTC) - timedelta(days=2))

    response = admin_client.post(PAGE_URL, certificate_post(upload=pem_upload(rsa_key(), expired)))

    body = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="smtp-certificate-error"' in body
    assert f"This certificate expired on {expired.not_valid_after_utc:%Y-%m-%d}" in body
    assert MailServerConfig.load().version == 0


def test_a_key_that_does_not_belong_to_the_certificate_is_refused(admin_client):
    other = self_signed(rsa_key(1))

    response = admin_client.post(PAGE_URL, certificate_post(upload=pem_upload(rsa_key(0), other)))

    assert "The private key does not belong to the certificate" in response.content.decode()


def test_the_certificate_is_required_when_chosen(admin_client):
    response = admin_client.post(PAGE_URL, certificate_post())

    assert response.status_code == 200
    assert MailServerConfig.load().version == 0


def test_a_stored_certificate_is_kept_when_the_file_input_is_left_empty(admin_client):
    admin_client.post(PAGE_URL, certificate_post(upload=pem_upload()))
    before = MailServerConfig.load().oauth_certificate

    assert admin_client.post(PAGE_URL, certificate_post(version="1")).status_code == 302

    assert MailServerConfig.load().oauth_certificate == before


def test_a_stored_certificate_is_not_used_for_another_tenant(admin_client):
    admin_client.post(PAGE_URL, certificate_post(upload=pem_upload()))

    response = admin_client.post(
        PAGE_URL, certificate_post(oauth_tenant_id=OTHER_TENANT, version="1")
    )

    assert "Tenant ID changed since the certificate was saved" in response.content.decode()
    assert MailServerConfig.load().oauth_tenant_id == MS_TENANT


# -- MSAL signs, the fakes verify ------------------------------------------------------


def test_test_mail_signs_in_to_exchange_with_a_token_bought_by_the_certificate(
    admin_client, exchange, microsoft_fake
):
    certificate = exchange.certificate
    post = certificate_post(exchange.port, upload=pem_upload(rsa_key(), certificate))

    body = admin_client.post(TEST_URL, post, **FETCH).content.decode()

    assert "Test mail sent" in body, body
    assert "Signed in with the certificate CN=smtp-mailer" in body
    assert f"AUTH XOAUTH2 as {MS_USER}: accepted" in body
    assert exchange.messages[0].auth_user == MS_USER
    assert_signed_with(microsoft_fake.assertions[0], certificate, MS_CLIENT)
    assert microsoft_fake.tokens_issued == {"client_credentials": 1}
    assert "PRIVATE KEY" not in body
    assert MailServerConfig.load().version == 0  # Test Mail saves nothing


def test_test_mail_uses_the_stored_certificate_when_the_file_input_is_left_empty(
    admin_client, exchange
):
    store_certificate(exchange, rsa_key(), exchange.certificate)

    body = admin_client.post(
        TEST_URL, certificate_post(exchange.port, version="1"), **FETCH
    ).content.decode()

    assert "Test mail sent" in body, body
    entry = AuditEntry.objects.first()
    assert "stored secrets used: Microsoft OAuth Certificate" in entry.summary


def test_mail_is_delivered_through_app_only_smtp_with_a_stored_certificate(exchange, settings):
    settings.EMAIL_BACKEND = "sender.backend.EmailBackend"  # pytest-django's is locmem
    settings.MAILCONFIG_DELIVERY = "immediate"
    store_certificate(exchange, rsa_key(), exchange.certificate)

    assert mail.send_mail("Alert", "Body", None, ["ops@contoso.com"]) == 1

    assert exchange.messages[0].rcpt_tos == ["ops@contoso.com"]
    assert exchange.messages[0].auth_user == MS_USER


def test_a_certificate_not_registered_on_the_app_is_explained(admin_client, exchange):
    unregistered = self_signed(rsa_key(1))
    post = certificate_post(exchange.port, upload=pem_upload(rsa_key(1), unregistered))

    body = admin_client.post(TEST_URL, post, **FETCH).content.decode()

    assert "AADSTS700027" in body
    assert "Certificates &amp; secrets &gt; Certificates" in body
    assert exchange.messages == []


def test_the_client_secret_is_not_sent_when_the_certificate_is_chosen(exchange):
    config = MailSettings.from_model(store_certificate(exchange, oauth_client_secret="left-over"))

    credential = smtp_token_provider(config).credential
    assert credential.is_certificate and credential.secret == ""


# -- expiry radar, settings file -------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "expected"),
    [(31, None), (30, Severity.NOTICE), (7, Severity.WARNING), (1, Severity.CRITICAL)],
)
def test_the_radar_warns_for_the_smtp_certificate_30_7_and_1_days_ahead(exchange, days, expected):
    config = store_certificate(exchange)
    expires = config.oauth_certificate_expires_at

    items = {item.key: item for item in radar(expires - timedelta(days=days))}

    assert items["oauth_certificate"].severity == expected
    assert (
        items["oauth_certificate"].what == "The Azure app's certificate for SMTP (CN=mail-console)"
    )
    assert items["oauth_certificate"].link.endswith("#smtp-credential")


def test_the_radar_ignores_a_stored_smtp_certificate_while_the_client_secret_is_chosen(exchange):
    config = store_certificate(exchange, oauth_credential_type="secret")

    assert "oauth_certificate" not in {
        item.key for item in radar(config.oauth_certificate_expires_at)
    }


def test_a_nearly_expired_smtp_certificate_raises_the_banner(admin_client):
    soon = self_signed(rsa_key(), expires_at=datetime.now(UTC) + timedelta(days=5))
    admin_client.post(PAGE_URL, certificate_post(upload=pem_upload(rsa_key(), soon)))

    body = admin_client.get(PAGE_URL).content.decode()

    assert elements(body, data_testid="expiry-banner", data_severity="warning")
    assert "certificate for SMTP (CN=mail-console) expires in 4 days" in body


def test_the_smtp_certificate_round_trips_through_the_settings_file(
    exchange, tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("MAILCONFIG_EXPORT_PASSPHRASE", "correct horse battery staple")
    certificate = self_signed(rsa_key())
    store_certificate(exchange, rsa_key(), certificate)
    path = tmp_path / "settings.json"
    call_command(
        "export_mail_settings", "--output", str(path), "--include-secrets", stderr=io.StringIO()
    )
    exported = json.loads(path.read_text())["connections"]["primary"]
    assert "PRIVATE KEY" not in path.read_text()
    assert "oauth_certificate_thumbprint" not in exported  # read again from the certificate
    MailServerConfig.objects.all().delete()

    call_command("import_mail_settings", str(path), stdout=io.StringIO())

    config = MailServerConfig.load()
    assert config.oauth_credential_type == "certificate"
    assert cert_pem(certificate).decode() in config.oauth_certificate
    assert config.oauth_certificate_thumbprint == sha1_thumbprint(certificate)
    assert config.oauth_certificate_expires_at == certificate.not_valid_after_utc
