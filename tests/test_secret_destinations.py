"""A stored secret is never sent to a destination it was not saved for; every Test Mail is audited.

Whoever may edit the page could otherwise point Server Name, Port or Connection
Security at a listener of their own, leave the password blank ("use the stored
one"), press Test Mail, and read the password. Real listeners (aiosmtpd) stand
where such a listener would.
"""

from __future__ import annotations

import pytest

from settings_app.models import AuditEntry, MailServerConfig
from tests.factories import PAGE_URL, smtp_basic_post, smtp_post, store_smtp
from tests.oauth_helpers import MS_USER, authorize_microsoft, microsoft_post
from tests.test_api_transports import CLIENT_ID, GRAPH_VALUES, SECRET, TENANT

pytestmark = pytest.mark.django_db
TEST_URL = PAGE_URL + "test-mail/"
FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}
ASK_AGAIN = "enter the password again"


def press_test_mail(client, post: dict) -> str:
    return client.post(TEST_URL, post, **FETCH).content.decode()


def test_another_server_with_a_blank_password_receives_nothing(
    admin_client, smtp_starttls, smtp_plain, trust_test_ca
):
    store_smtp(smtp_starttls)  # the password was saved for this server
    listener = smtp_plain  # someone else's, no TLS
    post = smtp_post(listener, server_name="127.0.0.1", password="", security="none")
    body = press_test_mail(admin_client, post)
    assert listener.connections == 0 and listener.auth_failures == 0
    assert "Nothing was sent" in body
    assert "Password: Server Name or IP, Port Number or Connection Security changed" in body
    assert ASK_AGAIN in body


def test_the_saved_server_without_tls_is_another_destination(
    admin_client, smtp_starttls, trust_test_ca
):
    store_smtp(smtp_starttls)
    body = press_test_mail(admin_client, smtp_post(smtp_starttls, password="", security="none"))
    assert smtp_starttls.connections == 0
    assert "Password: Connection Security changed since the password was saved" in body


def test_the_saved_server_on_another_port_is_another_destination(
    admin_client, smtp_starttls, smtp_server_factory, trust_test_ca
):
    store_smtp(smtp_starttls)
    listener = smtp_server_factory(security="starttls")
    body = press_test_mail(admin_client, smtp_post(listener, password=""))
    assert listener.connections == 0
    assert "Password: Port Number changed since the password was saved" in body


def test_the_password_typed_again_goes_to_the_new_server(
    admin_client, smtp_starttls, smtp_plain, trust_test_ca
):
    store_smtp(smtp_starttls)
    body = press_test_mail(admin_client, smtp_post(smtp_plain, security="none"))
    assert "Test mail sent" in body
    assert smtp_plain.auth_mechanisms == ["PLAIN"]


def test_the_saved_destination_still_uses_the_stored_password(
    admin_client, smtp_starttls, trust_test_ca
):
    store_smtp(smtp_starttls)
    body = press_test_mail(
        admin_client, smtp_post(smtp_starttls, password="", server_name="LOCALHOST")
    )
    assert "Test mail sent" in body  # a host name in capitals is the same host


def test_a_graph_client_secret_is_not_sent_to_another_tenant(admin_client, microsoft_fake):
    microsoft_fake.add_app(TENANT, CLIENT_ID, SECRET)
    admin_client.post(PAGE_URL, smtp_basic_post(**GRAPH_VALUES))
    other_tenant = "fabrikam.onmicrosoft.com"
    microsoft_fake.requests.clear()
    post = smtp_basic_post(
        **GRAPH_VALUES | {"api_tenant_id": other_tenant, "api_client_secret": ""}
    )
    body = press_test_mail(admin_client, post)
    assert "Client Secret: Tenant ID changed since the client secret was saved" in body
    assert not microsoft_fake.requests  # neither tenant was asked for a token


def test_a_graph_client_secret_is_not_sent_to_another_azure_cloud(admin_client, microsoft_fake):
    microsoft_fake.add_app(TENANT, CLIENT_ID, SECRET)
    admin_client.post(PAGE_URL, smtp_basic_post(**GRAPH_VALUES))
    microsoft_fake.requests.clear()
    post = smtp_basic_post(
        **GRAPH_VALUES | {"api_azure_environment": "azure_us_government", "api_client_secret": ""}
    )
    body = press_test_mail(admin_client, post)
    assert "Azure environment changed since the client secret was saved" in body
    assert not microsoft_fake.requests


def test_a_stored_oauth_grant_is_not_sent_to_another_server(
    admin_client, microsoft_fake, ca_file, smtp_server_factory
):
    saved = smtp_server_factory(security="starttls")
    authorize_microsoft(admin_client, microsoft_fake, ca_file, server_port=saved.port)
    tokens_seen: list[str] = []
    listener = smtp_server_factory(
        security="starttls", token_checker=lambda user, token: tokens_seen.append(token) or True
    )
    post = microsoft_post(
        listener.port, oauth_client_secret="", version=str(MailServerConfig.load().version)
    )
    body = press_test_mail(admin_client, post)
    assert tokens_seen == [] and listener.auth_mechanisms == []
    assert "Authorization needed" in body and "Test mail failed" in body


def test_the_stored_oauth_grant_works_with_the_saved_server(
    admin_client, microsoft_fake, ca_file, smtp_server_factory
):
    saved = smtp_server_factory(
        security="starttls",
        token_checker=lambda user, token: (
            user == MS_USER and microsoft_fake.token_is_valid(token, "SMTP.Send")
        ),
    )
    authorize_microsoft(admin_client, microsoft_fake, ca_file, server_port=saved.port)
    post = microsoft_post(
        saved.port, oauth_client_secret="", version=str(MailServerConfig.load().version)
    )
    assert "Test mail sent" in press_test_mail(admin_client, post)


# Every Test Mail is audited ---------------------------------------------------


def last_test_mail_entry() -> AuditEntry:
    return AuditEntry.objects.filter(action="Test Mail").latest("pk")


def test_a_test_mail_is_audited_with_destination_stored_secrets_and_result(
    admin_client, smtp_starttls, trust_test_ca
):
    store_smtp(smtp_starttls)
    post = smtp_post(smtp_starttls, password="")
    admin_client.post(TEST_URL, post, REMOTE_ADDR="192.0.2.7", **FETCH)
    entry = last_test_mail_entry()
    assert (entry.username, entry.source_ip, entry.version) == ("admin", "192.0.2.7", 1)
    assert entry.changed_fields == [
        f"to SMTP (Server Name or IP localhost, Port Number {smtp_starttls.port}, "
        "Connection Security TLS)",
        "stored secrets used: Password",
        "sent to admin@example.com",
    ]


def test_a_failed_test_mail_is_audited_with_its_failing_step(
    admin_client, smtp_starttls, trust_test_ca
):
    press_test_mail(admin_client, smtp_post(smtp_starttls, password="wrong"))
    entry = last_test_mail_entry()
    assert entry.changed_fields[1:] == [
        "no stored secret used",
        "failed at Authenticate (535) sending to admin@example.com",
    ]
    assert "wrong" not in str(entry.changed_fields)


def test_a_refused_test_mail_is_audited_with_where_it_would_have_gone(
    admin_client, smtp_starttls, smtp_plain, trust_test_ca
):
    store_smtp(smtp_starttls)
    post = smtp_post(smtp_plain, server_name="127.0.0.1", password="", security="none")
    press_test_mail(admin_client, post)
    destination, used, result = last_test_mail_entry().changed_fields
    assert destination == (
        f"to SMTP (Server Name or IP 127.0.0.1, Port Number {smtp_plain.port}, "
        "Connection Security None)"
    )
    assert used == "no stored secret used"
    assert result == "not sent: to correct first: Password"


def test_test_mail_entries_read_as_one_line_in_the_change_history(
    admin_client, smtp_starttls, trust_test_ca
):
    press_test_mail(admin_client, smtp_post(smtp_starttls))
    body = admin_client.get(PAGE_URL).content.decode()
    assert (
        f"Test Mail; to SMTP (Server Name or IP localhost, Port Number {smtp_starttls.port}, "
        "Connection Security TLS); no stored secret used; sent to admin@example.com"
    ) in body


def test_a_test_mail_is_not_a_change_in_the_conflict_message(
    admin_client, smtp_starttls, trust_test_ca
):
    stale = smtp_post(smtp_starttls, server_name="mine.example.com")  # loaded at version 0
    admin_client.post(PAGE_URL, smtp_post(smtp_starttls))
    press_test_mail(admin_client, smtp_post(smtp_starttls, password=""))
    response = admin_client.post(PAGE_URL, stale)
    assert response.status_code == 409
    (message,) = [str(m) for m in response.context["messages"] if "Not saved" in str(m)]
    assert message.count("admin changed") == 1  # the save; the Test Mail changed nothing
    assert "Test Mail" not in message
