"""SMTP OAuth with Microsoft, Sign-in: Application: app-only XOAUTH2 for Exchange Online.

Against the Microsoft identity fake (client credentials) and an Exchange-like SMTP
server that accepts only the token the fake issued for client credentials with
Exchange's scope, for a mailbox the app was given.
"""

from __future__ import annotations

import pytest
from django.core import mail

from sender.errors import AuthenticationError
from sender.factory import build_transport
from sender.models import OutboxMessage, Status
from sender.permission_check import OK, check_permissions
from settings_app.models import MailServerConfig
from settings_app.values import MailSettings
from tests.factories import PAGE_URL, store
from tests.oauth_helpers import MS_CLIENT, MS_SECRET, MS_TENANT, MS_USER, microsoft_post
from tests.outbox_helpers import forget_worker_connection, run_due_tasks
from tests.servers.exchange_smtp import EXCHANGE_APP_SCOPE

pytestmark = pytest.mark.django_db
TEST_URL = PAGE_URL + "test-mail/"
FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}
APP_ONLY = {"oauth_sign_in": "application"}


@pytest.fixture
def exchange(microsoft_fake, exchange_app_only_smtp):
    """The app registered with SMTP.SendAsApp, and FullAccess on the Username mailbox."""
    microsoft_fake.add_app(MS_TENANT, MS_CLIENT, MS_SECRET, roles=("SMTP.SendAsApp",))
    server = exchange_app_only_smtp()
    server.grant_mailbox(MS_USER, MS_CLIENT)
    return server


def app_only_post(server, **overrides) -> dict:
    return microsoft_post(server.port, **(APP_ONLY | overrides))


def stored_values(config: MailSettings) -> dict:
    """The settings as model fields to store (which connection is the record's own id)."""
    values = vars(config) | {"version": 0}
    del values["connection"]
    return values


def app_only_settings(server, **overrides) -> MailSettings:
    values = {
        "server_name": "localhost",
        "port": server.port,
        "security": "tls",
        "auth": "oauth",
        "oauth_provider": "microsoft",
        "oauth_sign_in": "application",
        "username": MS_USER,
        "from_address": MS_USER,
        "oauth_tenant_id": MS_TENANT,
        "oauth_client_id": MS_CLIENT,
        "oauth_client_secret": MS_SECRET,
    }
    return MailSettings(**(values | overrides))


def test_test_mail_signs_in_as_the_username_mailbox_with_an_app_only_token(
    admin_client, exchange, microsoft_fake
):
    body = admin_client.post(TEST_URL, app_only_post(exchange), **FETCH).content.decode()

    assert "Test mail sent" in body, body
    assert f"AUTH XOAUTH2 as {MS_USER}: accepted" in body
    assert exchange.auth_mechanisms == ["XOAUTH2"]
    assert exchange.messages[0].auth_user == MS_USER
    # Client credentials only: nobody signed in, no grant was needed or made.
    assert microsoft_fake.tokens_issued == {"client_credentials": 1}
    assert MailServerConfig.load().version == 0


def test_the_token_is_asked_for_exchanges_scope_of_the_chosen_cloud(
    exchange, microsoft_fake, settings
):
    transport = build_transport(app_only_settings(exchange))
    assert transport.token_provider.scope == EXCHANGE_APP_SCOPE

    us_gov = build_transport(
        app_only_settings(exchange, oauth_azure_environment="azure_us_government")
    )
    assert us_gov.token_provider.scope == "https://outlook.office365.us/.default"
    rows = settings.MAILCONFIG_AZURE_ENVIRONMENTS
    assert {row["smtp_app_scope"] for row in rows.values()} == {
        "https://outlook.office365.com/.default",
        "https://outlook.office365.us/.default",
        "https://outlook-dod.office365.us/.default",
        "https://partner.outlook.cn/.default",
    }


def test_immediate_delivery_through_send_mail_uses_the_app_only_token(exchange, settings):
    settings.EMAIL_BACKEND = "sender.backend.EmailBackend"
    settings.MAILCONFIG_DELIVERY = "immediate"
    store(**stored_values(app_only_settings(exchange)))

    assert mail.send_mail("Alert", "Body", None, ["ops@contoso.com"]) == 1

    assert exchange.messages[0].rcpt_tos == ["ops@contoso.com"]
    assert exchange.messages[0].auth_user == MS_USER


@pytest.mark.django_db(transaction=True)
def test_a_worker_delivers_queued_mail_with_the_app_only_token(exchange, settings):
    settings.EMAIL_BACKEND = "sender.backend.EmailBackend"
    settings.MAILCONFIG_DELIVERY = "queued"
    forget_worker_connection()
    store(**stored_values(app_only_settings(exchange)))

    mail.send_mail("Alert", "Body", None, ["ops@contoso.com"])
    run_due_tasks()
    forget_worker_connection()

    assert OutboxMessage.objects.get().status == Status.SENT
    assert exchange.messages[0].auth_user == MS_USER


def test_a_mailbox_the_app_has_no_permission_on_is_refused_with_the_exchange_prerequisites(
    exchange,
):
    exchange.mailbox_permissions.clear()

    with pytest.raises(AuthenticationError) as raised, build_transport(app_only_settings(exchange)):
        pass

    error = raised.value
    assert "5.7.3" in error.provider_text
    for prerequisite in ("SMTP.SendAsApp", "New-ServicePrincipal", "Add-MailboxPermission"):
        assert prerequisite in error.hint
    assert exchange.refused == [f"{MS_USER}: app {MS_CLIENT} has no permission on the mailbox"]


def test_a_token_without_smtp_sendasapp_is_refused_and_the_transcript_says_what_is_missing(
    admin_client, exchange, microsoft_fake
):
    microsoft_fake.add_app(MS_TENANT, MS_CLIENT, MS_SECRET, roles=())

    body = admin_client.post(TEST_URL, app_only_post(exchange), **FETCH).content.decode()

    assert "Test mail sent" not in body
    assert "SMTP.SendAsApp is missing" in body
    assert "535" in body and "New-ServicePrincipal" in body
    assert exchange.refused == [f"{MS_USER}: no SMTP.SendAsApp role"]


def test_a_delegated_token_is_not_what_the_app_only_server_accepts(exchange, microsoft_fake):
    # The server checks it got the token issued for client credentials with Exchange's scope.
    delegated = microsoft_fake.issue_user_tokens(
        MS_TENANT, MS_CLIENT, MS_USER, "https://outlook.office.com/SMTP.Send offline_access"
    )
    assert not exchange.token_checker(MS_USER, delegated["access_token"])


def test_a_wrong_client_secret_is_explained_by_its_aadsts_code(admin_client, exchange):
    post = app_only_post(exchange, oauth_client_secret="not-the-secret")

    body = admin_client.post(TEST_URL, post, **FETCH).content.decode()

    assert "AADSTS7000215" in body
    assert "Microsoft rejected the Client Secret" in body
    assert exchange.connections <= 1 and exchange.messages == []


def test_saving_application_sign_in_goes_to_no_consent_and_says_none_is_needed(
    admin_client, exchange, microsoft_fake
):
    response = admin_client.post(PAGE_URL, app_only_post(exchange))

    assert response.status_code == 302 and response["Location"] == PAGE_URL
    assert microsoft_fake.last_authorize_params == {}
    assert MailServerConfig.load().oauth_sign_in == "application"
    body = admin_client.get(PAGE_URL).content.decode()
    assert 'data-testid="app-only-panel"' in body and "None needed" in body
    assert EXCHANGE_APP_SCOPE in body


def test_a_post_without_the_sign_in_choice_keeps_the_stored_one(admin_client, exchange):
    admin_client.post(PAGE_URL, app_only_post(exchange))
    post = app_only_post(exchange, oauth_client_secret="", version="1")
    del post["oauth_sign_in"]  # an older form or settings file

    admin_client.post(PAGE_URL, post)

    assert MailServerConfig.load().oauth_sign_in == "application"


def test_check_permissions_logs_in_with_the_apps_own_token(exchange):
    findings = check_permissions(app_only_settings(exchange))

    assert findings[-1].status == OK, findings
    assert findings[-1].text == (
        f"Login as {MS_USER} with the app's own XOAUTH2 token (no sign-in) accepted "
        "(nothing was sent)."
    )
    assert exchange.messages == []
