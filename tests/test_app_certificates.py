"""Certificate credentials for the Graph app: upload checks, storage, and MSAL signing for real.

MSAL signs a client assertion with the uploaded key; the Microsoft fake verifies it
as Entra ID does (x5t#S256 names a registered certificate, the signature verifies
with its public key, aud/iss/sub/exp hold) before it issues a token.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile

from sender.client_credentials import AppCredential
from settings_app.models import AuditEntry, MailServerConfig
from tests.certificates import (
    assert_signed_with,
    cert_pem,
    key_pem,
    pem_upload,
    pkcs12_upload,
    register_certificate_only_app,
    rsa_key,
    self_signed,
    sha1_thumbprint,
    stored_certificate_fields,
    stored_column,
)
from tests.factories import PAGE_URL, smtp_basic_post, store
from tests.html import elements
from tests.test_api_transports import CLIENT_ID, TENANT

pytestmark = pytest.mark.django_db
TEST_URL = PAGE_URL + "test-mail/"
FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}
FROM = "mailer@contoso.com"


def certificate_post(upload=None, **overrides) -> dict:
    """The form in API mode, Microsoft Graph, Credential: Certificate."""
    values = {
        "mode": "api",
        "api_provider": "microsoft",
        "api_credential_type": "certificate",
        "api_tenant_id": TENANT,
        "api_client_id": CLIENT_ID,
        "from_address": FROM,
        "admin_address": "admin@contoso.com",
    }
    post = smtp_basic_post(**(values | overrides))
    if upload is not None:
        post["api_certificate"] = upload
    return post


def stored_certificate(key=None, certificate=None) -> MailServerConfig:
    """Save Graph with a certificate the way the page stores it (one PEM, encrypted)."""
    return store(
        mode="api",
        api_provider="microsoft",
        api_credential_type="certificate",
        api_tenant_id=TENANT,
        api_client_id=CLIENT_ID,
        from_address=FROM,
        admin_address="admin@contoso.com",
        **stored_certificate_fields("api", key, certificate),
    )


@pytest.fixture
def graph_with_certificate(microsoft_fake):
    """An app registration that knows only the certificate (no client secret)."""
    microsoft_fake.certificate = register_certificate_only_app(microsoft_fake, TENANT, CLIENT_ID)
    return microsoft_fake


# -- upload ----------------------------------------------------------------------------


def test_a_pem_with_key_and_certificate_is_stored_encrypted_with_its_facts(admin_client):
    certificate = self_signed(rsa_key(), subject="mail-console.contoso.com")
    response = admin_client.post(PAGE_URL, certificate_post(pem_upload(rsa_key(), certificate)))
    assert response.status_code == 302
    config = MailServerConfig.load()
    assert config.api_credential_type == "certificate"
    assert config.api_certificate.startswith("-----BEGIN PRIVATE KEY-----")
    assert "-----BEGIN CERTIFICATE-----" in config.api_certificate
    assert config.api_certificate_subject == "CN=mail-console.contoso.com"
    assert config.api_certificate_thumbprint == sha1_thumbprint(certificate)
    assert config.api_certificate_expires_at == certificate.not_valid_after_utc
    raw = stored_column("api_certificate")
    assert "PRIVATE KEY" not in raw and "CERTIFICATE" not in raw
    assert AuditEntry.objects.first().changed_fields[-1] == "Microsoft Graph Certificate (changed)"


def test_the_page_shows_subject_thumbprint_and_expiry_but_never_the_certificate(admin_client):
    certificate = self_signed(rsa_key(), subject="mail-console.contoso.com")
    admin_client.post(PAGE_URL, certificate_post(pem_upload(rsa_key(), certificate)))
    body = admin_client.get(PAGE_URL).content.decode()
    assert "CN=mail-console.contoso.com" in body
    assert sha1_thumbprint(certificate) in body
    assert f"{certificate.not_valid_after_utc:%Y-%m-%d}" in body
    assert "PRIVATE KEY" not in body and "BEGIN CERTIFICATE" not in body


def test_a_pkcs12_file_with_its_password_is_accepted(admin_client):
    certificate = self_signed(rsa_key())
    post = certificate_post(
        pkcs12_upload(rsa_key(), certificate, password="pfx-pass"),
        api_certificate_password="pfx-pass",
    )
    assert admin_client.post(PAGE_URL, post).status_code == 302
    config = MailServerConfig.load()
    assert config.api_certificate_thumbprint == sha1_thumbprint(certificate)
    assert "pfx-pass" not in str(AuditEntry.objects.first().changed_fields)


def test_a_pkcs12_file_with_a_wrong_password_is_refused_saying_so(admin_client):
    post = certificate_post(pkcs12_upload(password="right"), api_certificate_password="wrong")
    response = admin_client.post(PAGE_URL, post)
    assert response.status_code == 200
    assert "The password does not open this PKCS#12 (.pfx/.p12) file" in response.content.decode()
    assert MailServerConfig.load().api_certificate == ""


def test_a_pkcs12_file_without_its_password_asks_for_it(admin_client):
    response = admin_client.post(PAGE_URL, certificate_post(pkcs12_upload(password="right")))
    assert "type its password in Certificate password" in response.content.decode()


def test_an_encrypted_pem_key_opens_with_its_password(admin_client):
    post = certificate_post(pem_upload(password="pem-pass"), api_certificate_password="pem-pass")
    assert admin_client.post(PAGE_URL, post).status_code == 302
    assert "ENCRYPTED" not in MailServerConfig.load().api_certificate  # stored normalised


def test_an_expired_certificate_is_refused_at_upload(admin_client):
    expired = self_signed(rsa_key(), expires_at=datetime.now(UTC) - timedelta(days=2))
    response = admin_client.post(PAGE_URL, certificate_post(pem_upload(rsa_key(), expired)))
    body = response.content.decode()
    assert response.status_code == 200
    assert f"This certificate expired on {expired.not_valid_after_utc:%Y-%m-%d}" in body
    assert "Create a new certificate" in body
    assert MailServerConfig.load().version == 0


def test_a_nearly_expired_certificate_is_accepted_and_is_on_the_radar(admin_client):
    soon = self_signed(rsa_key(), expires_at=datetime.now(UTC) + timedelta(days=5))
    assert (
        admin_client.post(PAGE_URL, certificate_post(pem_upload(rsa_key(), soon))).status_code
        == 302
    )
    body = admin_client.get(PAGE_URL).content.decode()
    assert elements(body, data_testid="expiry-banner", data_severity="warning")
    assert "The Azure app&#x27;s certificate (CN=mail-console) expires in 4 days" in body


def test_a_key_that_does_not_belong_to_the_certificate_is_refused(admin_client):
    other = self_signed(rsa_key(1))
    response = admin_client.post(PAGE_URL, certificate_post(pem_upload(rsa_key(0), other)))
    assert "The private key does not belong to the certificate" in response.content.decode()


def test_a_certificate_without_its_private_key_is_refused(admin_client):
    upload = SimpleUploadedFile("public.cer", cert_pem(self_signed(rsa_key())))
    response = admin_client.post(PAGE_URL, certificate_post(upload))
    assert "This file holds no private key" in response.content.decode()


def test_a_non_rsa_key_is_refused(admin_client):
    key = ec.generate_private_key(ec.SECP256R1())
    response = admin_client.post(PAGE_URL, certificate_post(pem_upload(key, self_signed(key))))
    assert "This key is not an RSA key" in response.content.decode()


def test_certificate_is_required_when_chosen(admin_client):
    response = admin_client.post(PAGE_URL, certificate_post())
    assert response.status_code == 200
    assert MailServerConfig.load().version == 0


def test_a_stored_certificate_is_kept_when_the_file_input_is_left_empty(admin_client):
    admin_client.post(PAGE_URL, certificate_post(pem_upload()))
    before = MailServerConfig.load().api_certificate
    assert admin_client.post(PAGE_URL, certificate_post()).status_code == 302
    assert MailServerConfig.load().api_certificate == before


def test_a_stored_certificate_is_not_used_for_another_tenant(admin_client):
    admin_client.post(PAGE_URL, certificate_post(pem_upload()))
    other_tenant = "11111111-2222-4333-8444-555566667777"
    response = admin_client.post(PAGE_URL, certificate_post(api_tenant_id=other_tenant))
    assert "enter the certificate again" in response.content.decode()


# -- MSAL signs, the fake verifies -----------------------------------------------------


def test_msal_is_given_key_and_certificate_without_a_sha1_thumbprint():
    key, certificate = rsa_key(), self_signed(rsa_key())
    credential = AppCredential(certificate=(key_pem(key) + cert_pem(certificate)).decode())
    given = credential.for_msal()
    assert isinstance(given, dict) and set(given) == {"private_key", "public_certificate"}
    assert given["public_certificate"].strip() == cert_pem(certificate).decode().strip()
    assert "CERTIFICATE" not in given["private_key"]


def test_graph_test_mail_signs_in_with_the_certificate(admin_client, graph_with_certificate):
    certificate = graph_with_certificate.certificate
    post = certificate_post(pem_upload(rsa_key(), certificate))
    body = admin_client.post(TEST_URL, post, **FETCH).content.decode()
    assert "Test mail sent" in body
    assert "Signed in with the certificate CN=mail-console" in body
    assert len(graph_with_certificate.sent) == 1
    assert_signed_with(graph_with_certificate.assertions[0], certificate, CLIENT_ID)
    assert "PRIVATE KEY" not in body


def test_mail_is_delivered_through_graph_with_a_stored_certificate(
    graph_with_certificate, settings
):
    settings.EMAIL_BACKEND = "sender.backend.EmailBackend"  # pytest-django's is locmem
    settings.MAILCONFIG_DELIVERY = "immediate"
    stored_certificate(rsa_key(), graph_with_certificate.certificate)
    assert mail.send_mail("Subject", "Body", None, ["bob@example.com"]) == 1
    assert graph_with_certificate.sent[0].message["To"] == "bob@example.com"
    assert graph_with_certificate.tokens_issued["client_credentials"] == 1


def test_a_certificate_not_registered_on_the_app_is_explained(admin_client, graph_with_certificate):
    unregistered = self_signed(rsa_key(1))
    post = certificate_post(pem_upload(rsa_key(1), unregistered))
    body = admin_client.post(TEST_URL, post, **FETCH).content.decode()
    assert "AADSTS700027" in body
    assert "Certificates &amp; secrets &gt; Certificates" in body
    assert graph_with_certificate.sent == []


def test_a_client_secret_is_not_accepted_in_place_of_a_registered_certificate(
    admin_client, graph_with_certificate
):
    post = certificate_post(api_credential_type="secret", api_client_secret="guess")
    body = admin_client.post(TEST_URL, post, **FETCH).content.decode()
    assert "AADSTS7000215" in body
