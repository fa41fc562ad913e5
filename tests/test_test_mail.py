"""Test Mail: unsaved form values, every mode, a transcript with explanations, nothing stored changes."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from settings_app.models import AuditEntry, MailServerConfig, TestMailRun
from tests.factories import PAGE_URL, smtp_basic_post, smtp_post
from tests.oauth_helpers import (
    MS_USER,
    consent,
    local,
    microsoft_post,
    register_microsoft,
    xoauth2_server,
)
from tests.test_api_transports import CLIENT_ID, GRAPH_VALUES, SECRET, TENANT

pytestmark = pytest.mark.django_db
TEST_URL = PAGE_URL + "test-mail/"
FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}


def test_smtp_basic_success_unsaved(admin_client, smtp_starttls, trust_test_ca):
    response = admin_client.post(TEST_URL, smtp_post(smtp_starttls), **FETCH)
    body = response.content.decode()
    assert "Test mail sent" in body
    for step in ("Resolve host", "Connect", "EHLO", "STARTTLS", "Authenticate", "Send message"):
        assert step in body
    assert smtp_starttls.messages[0].rcpt_tos == ["admin@example.com"]
    assert MailServerConfig.load().version == 0  # nothing saved
    assert "s3cret" not in body


def test_recipient_can_be_changed(admin_client, smtp_starttls, trust_test_ca):
    admin_client.post(TEST_URL, smtp_post(smtp_starttls, test_recipient="ops@example.com"), **FETCH)
    assert smtp_starttls.messages[0].rcpt_tos == ["ops@example.com"]


def test_wrong_password_is_explained_and_nothing_changes(
    admin_client, smtp_starttls, trust_test_ca
):
    admin_client.post(PAGE_URL, smtp_post(smtp_starttls))
    before = MailServerConfig.load()
    response = admin_client.post(TEST_URL, smtp_post(smtp_starttls, password="wrong"), **FETCH)
    body = response.content.decode()
    assert "Test mail failed" in body and "What to do" in body and "535" in body
    after = MailServerConfig.load()
    assert (after.version, after.password) == (before.version, before.password)


def test_blank_password_means_the_stored_one(admin_client, smtp_starttls, trust_test_ca):
    admin_client.post(PAGE_URL, smtp_post(smtp_starttls))
    post = smtp_post(smtp_starttls, password="", version=str(MailServerConfig.load().version))
    response = admin_client.post(TEST_URL, post, **FETCH)
    assert "Test mail sent" in response.content.decode()


def test_invalid_form_lists_what_to_fix(admin_client):
    response = admin_client.post(TEST_URL, smtp_basic_post(port="99999"), **FETCH)
    assert "Nothing was sent" in response.content.decode()


def test_without_javascript_the_whole_page_shows_the_transcript(
    admin_client, smtp_starttls, trust_test_ca
):
    response = admin_client.post(TEST_URL, smtp_post(smtp_starttls))
    body = response.content.decode()
    assert "<form" in body and "Test mail sent" in body


def test_graph_mode(admin_client, microsoft_fake):
    microsoft_fake.add_app(TENANT, CLIENT_ID, SECRET)
    post = smtp_basic_post(**GRAPH_VALUES)
    body = admin_client.post(TEST_URL, post, **FETCH).content.decode()
    assert "Test mail sent" in body and "Mail.Send" in body
    assert len(microsoft_fake.sent) == 1


def test_gmail_mode(admin_client, google_fake):
    key = google_fake.make_service_account()
    google_fake.delegate(key["client_id"])
    google_fake.add_user("mailer@example.org")
    post = smtp_basic_post(mode="api", api_provider="google", from_address="mailer@example.org")
    post["service_account_key"] = SimpleUploadedFile("key.json", json.dumps(key).encode())
    body = admin_client.post(TEST_URL, post, **FETCH).content.decode()
    assert "Test mail sent" in body
    assert google_fake.sent[0].user == "mailer@example.org"


def test_smtp_oauth_through_the_stored_grant(
    admin_client, microsoft_fake, smtp_server_factory, ca_file
):
    server = xoauth2_server(smtp_server_factory, microsoft_fake, MS_USER, "SMTP.Send")
    register_microsoft(microsoft_fake)
    response = admin_client.post(PAGE_URL, microsoft_post(server.port))
    admin_client.get(local(consent(response["Location"], ca_file)))
    post = microsoft_post(
        server.port, oauth_client_secret="", version=str(MailServerConfig.load().version)
    )
    body = admin_client.post(TEST_URL, post, **FETCH).content.decode()
    assert "Test mail sent" in body, body
    assert "AUTH XOAUTH2 as mailer@contoso.com" in body
    assert server.auth_mechanisms == ["XOAUTH2"]


def test_smtp_oauth_without_grant_explains(admin_client, smtp_starttls, trust_test_ca):
    post = smtp_post(
        smtp_starttls,
        auth="oauth",
        oauth_provider="microsoft",
        oauth_tenant_id=TENANT,
        oauth_client_id=CLIENT_ID,
        oauth_client_secret=SECRET,
    )
    body = admin_client.post(TEST_URL, post, **FETCH).content.decode()
    assert "Authorization needed" in body


# One Test Mail at a time per user -------------------------------------------


def test_a_second_test_mail_while_one_runs_is_refused_and_sends_nothing(
    admin_client, admin_user, smtp_starttls, trust_test_ca
):
    TestMailRun.objects.create(user=admin_user)  # the first one, still under way
    body = admin_client.post(TEST_URL, smtp_post(smtp_starttls), **FETCH).content.decode()
    assert "A Test Mail is already running for you" in body
    assert smtp_starttls.connections == 0 and smtp_starttls.messages == []
    assert TestMailRun.objects.filter(user=admin_user).count() == 1  # not the second's to remove


def test_the_running_mark_is_removed_after_a_test(admin_client, smtp_starttls, trust_test_ca):
    admin_client.post(TEST_URL, smtp_post(smtp_starttls), **FETCH)
    admin_client.post(TEST_URL, smtp_post(smtp_starttls, password="wrong"), **FETCH)
    assert not TestMailRun.objects.exists()
    assert len(smtp_starttls.messages) == 1


def test_a_run_left_by_a_crashed_process_does_not_block_for_ever(
    admin_client, admin_user, smtp_starttls, trust_test_ca, settings
):
    run = TestMailRun.objects.create(user=admin_user)
    long_ago = timezone.now() - timedelta(seconds=settings.MAILCONFIG_TIMEOUT * 5)
    TestMailRun.objects.filter(pk=run.pk).update(started_at=long_ago)
    body = admin_client.post(TEST_URL, smtp_post(smtp_starttls), **FETCH).content.decode()
    assert "Test mail sent" in body


# A failed test changes nothing the admin saved ------------------------------


def test_a_failed_test_leaves_settings_and_saves_as_they_were(
    admin_client, smtp_starttls, trust_test_ca
):
    admin_client.post(PAGE_URL, smtp_post(smtp_starttls))
    before = MailServerConfig.objects.values().get()
    saves_before = list(AuditEntry.objects.exclude(action="Test Mail").values())
    post = smtp_post(smtp_starttls, password="wrong")
    body = admin_client.post(TEST_URL, post, **FETCH).content.decode()
    assert "Test mail failed" in body and "Your settings were not changed." in body
    assert MailServerConfig.objects.values().get() == before
    assert list(AuditEntry.objects.exclude(action="Test Mail").values()) == saves_before


# What the server said, and never a secret -----------------------------------


def test_the_servers_own_reply_is_shown(admin_client, smtp_starttls, trust_test_ca):
    reply = (
        "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant."
    )
    smtp_starttls.injections.auth_reply = "535 " + reply
    body = admin_client.post(TEST_URL, smtp_post(smtp_starttls), **FETCH).content.decode()
    assert 'data-testid="provider-text"' in body
    assert f'Server said: <code class="font-monospace">{reply}</code>' in body


def test_a_server_echoing_the_password_does_not_reveal_it(
    admin_client, smtp_starttls, trust_test_ca
):
    smtp_starttls.injections.echo_credentials = True
    post = smtp_post(smtp_starttls, password="CANARY-pässwört-42")
    body = admin_client.post(TEST_URL, post, **FETCH).content.decode()
    assert "Authentication failed for alice@example.com with password [hidden]" in body
    assert "CANARY" not in body
