"""Check permissions on the page: the form's unsaved values, one list of findings, nothing sent or saved."""

from __future__ import annotations

import pytest

from settings_app.models import AuditEntry, MailServerConfig, TestMailRun
from tests.factories import PAGE_URL, smtp_basic_post, smtp_post
from tests.oauth_helpers import MS_USER, consent, local, microsoft_post, register_microsoft
from tests.test_api_transports import CLIENT_ID, GRAPH_VALUES, SECRET, TENANT

pytestmark = pytest.mark.django_db
CHECK_URL = PAGE_URL + "check-permissions/"
FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}


def test_smtp_findings_are_listed_and_nothing_is_sent_or_saved(
    admin_client, smtp_starttls, trust_test_ca
):
    response = admin_client.post(CHECK_URL, smtp_post(smtp_starttls), **FETCH)

    body = response.content.decode()
    assert 'data-testid="findings"' in body
    assert "The server offers AUTH after STARTTLS: LOGIN, PLAIN, XOAUTH2." in body
    assert "Nothing was sent" in body
    assert smtp_starttls.messages == []
    assert MailServerConfig.load().version == 0
    assert not AuditEntry.objects.exists()
    assert "s3cret" not in body


def test_graph_findings_name_the_roles_and_the_mailbox(admin_client, microsoft_fake):
    microsoft_fake.add_app(TENANT, CLIENT_ID, SECRET)

    response = admin_client.post(CHECK_URL, smtp_basic_post(**GRAPH_VALUES), **FETCH)

    body = response.content.decode()
    assert "roles contain Mail.Send" in body
    assert "mailer@contoso.com exists and the app may send as it" in body
    assert microsoft_fake.sent == []


def test_blank_password_means_the_stored_one(admin_client, smtp_starttls, trust_test_ca):
    admin_client.post(PAGE_URL, smtp_post(smtp_starttls))
    post = smtp_post(smtp_starttls, password="", version=str(MailServerConfig.load().version))

    response = admin_client.post(CHECK_URL, post, **FETCH)

    assert "Login as alice@example.com with the password accepted" in response.content.decode()


def test_invalid_form_lists_what_to_fix_and_checks_nothing(admin_client):
    response = admin_client.post(CHECK_URL, smtp_basic_post(port="99999"), **FETCH)

    body = response.content.decode()
    assert "Nothing was checked" in body
    assert "Port Number" in body


def test_without_javascript_the_whole_page_shows_the_findings(
    admin_client, smtp_starttls, trust_test_ca
):
    response = admin_client.post(CHECK_URL, smtp_post(smtp_starttls))

    body = response.content.decode()
    assert 'id="permission-result-static"' in body
    assert "The server offers AUTH after STARTTLS" in body
    assert 'data-testid="save"' in body  # the form is still there, with the values typed


def test_a_check_while_a_test_mail_runs_is_refused(admin_client, admin_user, smtp_starttls):
    TestMailRun.objects.create(user=admin_user)

    response = admin_client.post(CHECK_URL, smtp_post(smtp_starttls), **FETCH)

    assert "already running" in response.content.decode()
    assert smtp_starttls.connections == 0


def test_get_is_not_allowed(admin_client):
    assert admin_client.get(CHECK_URL).status_code == 405


def test_smtp_oauth_logs_in_with_xoauth2_through_the_stored_grant(
    admin_client, microsoft_fake, smtp_server_factory, ca_file
):
    server = smtp_server_factory(
        security="starttls",
        token_checker=lambda user, token: (
            user == MS_USER and microsoft_fake.token_is_valid(token, "SMTP.Send")
        ),
    )
    register_microsoft(microsoft_fake)
    response = admin_client.post(PAGE_URL, microsoft_post(server.port))
    admin_client.get(local(consent(response["Location"], ca_file)))
    post = microsoft_post(
        server.port, oauth_client_secret="", version=str(MailServerConfig.load().version)
    )

    body = admin_client.post(CHECK_URL, post, **FETCH).content.decode()

    assert f"Login as {MS_USER} with XOAUTH2 accepted" in body
    assert server.auth_mechanisms == ["XOAUTH2"]
    assert server.messages == []


def test_smtp_oauth_without_a_grant_says_authorization_is_needed(
    admin_client, smtp_starttls, trust_test_ca
):
    post = smtp_post(
        smtp_starttls,
        auth="oauth",
        oauth_provider="microsoft",
        oauth_tenant_id=TENANT,
        oauth_client_id=CLIENT_ID,
        oauth_client_secret=SECRET,
    )

    body = admin_client.post(CHECK_URL, post, **FETCH).content.decode()

    assert "Authorization needed" in body
    assert 'data-status="fail"' in body
