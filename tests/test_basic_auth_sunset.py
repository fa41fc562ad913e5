"""Microsoft 365 turns SMTP Basic authentication off at the end of December 2026.

One host list (settings_app/microsoft_365.py) drives the page's warning, the banner on
every console page and the permission check; Test Mail and delivery explain 5.7.139,
5.7.30 and 5.7.3 with the fix.
"""

from __future__ import annotations

import datetime

import pytest
from django.core import mail
from django.urls import reverse

from sender import permission_check
from sender.errors import AuthenticationError, AuthorizationError
from sender.models import OutboxMessage, Status
from settings_app import microsoft_365
from settings_app.microsoft_365 import is_microsoft_365_host, sunset_phrase
from tests.factories import PAGE_URL, smtp_basic_post, smtp_post, store, store_smtp
from tests.outbox_helpers import forget_worker_connection, run_due_tasks

TEST_URL = PAGE_URL + "test-mail/"
FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}
PER_MAILBOX_FIX = "Set-CASMailbox -Identity <Username> -SmtpClientAuthenticationDisabled $false"
TENANT_WIDE_FIX = "Set-TransportConfig -SmtpClientAuthenticationDisabled $false"


# The host list ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "smtp.office365.com",
        "SMTP.Office365.com.",
        "smtp-legacy.office365.com",
        "outlook.office365.com",
        "smtp.office365.us",
        "smtp.partner.outlook.cn",
        "contoso-com.mail.protection.outlook.com",
    ],
)
def test_microsoft_365_hosts_of_every_cloud_and_the_relay_are_recognised(host):
    assert is_microsoft_365_host(host)


@pytest.mark.parametrize(
    "host", ["smtp.example.com", "smtp.gmail.com", "mail.protection.outlook.com.evil.example", ""]
)
def test_other_hosts_are_not_microsoft_365(host):
    assert not is_microsoft_365_host(host)


def test_a_cloud_added_to_the_azure_environments_brings_its_smtp_host(settings):
    settings.MAILCONFIG_AZURE_ENVIRONMENTS = {
        **settings.MAILCONFIG_AZURE_ENVIRONMENTS,
        "sovereign": {
            "label": "Sovereign",
            "authority_host": "https://login.sovereign.example",
            "graph_host": "https://graph.sovereign.example",
            "smtp_host": "smtp.sovereign.example",
            "smtp_scope": "https://outlook.sovereign.example/SMTP.Send",
        },
    }
    assert is_microsoft_365_host("smtp.sovereign.example")


def test_the_permission_check_uses_the_same_host_list():
    assert permission_check.is_microsoft_365_host is microsoft_365.is_microsoft_365_host
    assert not hasattr(permission_check, "MICROSOFT_365_SMTP_ALIASES")


def test_the_sunset_is_said_with_its_date_and_how_far_away_it_is():
    assert sunset_phrase(datetime.date(2026, 12, 1)) == (
        "at the end of December 2026 (31 December 2026), in 30 days"
    )
    assert sunset_phrase(datetime.date(2027, 1, 5)).startswith("since the end of December 2026")


# The page's warning, server-side ----------------------------------------------------


def warning_tag(body: str) -> str:
    return body[body.index('id="basic-auth-sunset"') :].split(">")[0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "server", ["smtp.office365.com", "smtp-legacy.office365.com", "x.mail.protection.outlook.com"]
)
def test_a_refused_save_with_basic_auth_to_microsoft_365_shows_the_warning_for_the_typed_values(
    admin_client, server
):
    # An invalid post re-renders the page with what was typed, not what is stored.
    body = admin_client.post(
        PAGE_URL, smtp_basic_post(server_name=server, from_address="not-an-address")
    ).content.decode()
    assert "hidden" not in warning_tag(body)
    assert "end of December 2026" in body


@pytest.mark.django_db
@pytest.mark.parametrize(
    "overrides",
    [{"username": "", "password": ""}, {"server_name": "smtp.example.com"}],
    ids=["no-username", "other-server"],
)
def test_no_warning_without_a_username_or_for_another_server(admin_client, overrides):
    post = smtp_basic_post(
        **{"server_name": "smtp.office365.com", "from_address": "bad"} | overrides
    )
    body = admin_client.post(PAGE_URL, post).content.decode()
    assert "hidden" in warning_tag(body)


@pytest.mark.django_db
def test_the_page_gives_the_script_the_same_host_list(admin_client):
    body = admin_client.get(PAGE_URL).content.decode()
    assert "data-m365-hosts=" in body
    assert "smtp-legacy.office365.com" in body and ".mail.protection.outlook.com" in body


# The banner on every console page ---------------------------------------------------


@pytest.mark.django_db
def test_saved_basic_auth_to_microsoft_365_puts_a_banner_on_every_console_page(admin_client):
    store(
        server_name="smtp.office365.com",
        port=587,
        username="mailer@contoso.com",
        password="secret",
    )
    for url in (PAGE_URL, "/RestAPI/WC/OAuthSetting"):
        body = admin_client.get(url).content.decode()
        assert 'data-testid="basic-auth-sunset-banner"' in body, url
        assert "Mail will stop at the end of December 2026" in body
        assert f'href="{PAGE_URL}#basic-auth-sunset"' in body


@pytest.mark.django_db
def test_no_banner_for_oauth_or_unsaved_settings(admin_client):
    assert "basic-auth-sunset-banner" not in admin_client.get(PAGE_URL).content.decode()
    store(server_name="smtp.office365.com", auth="oauth", username="mailer@contoso.com")
    assert "basic-auth-sunset-banner" not in admin_client.get(PAGE_URL).content.decode()


@pytest.mark.django_db
def test_no_banner_for_signed_out_visitors(client):
    store(server_name="smtp.office365.com", username="mailer@contoso.com")
    assert "basic-auth-sunset-banner" not in client.get("/accounts/login/").content.decode()


# Test Mail and delivery explain Microsoft 365's refusals ----------------------------


@pytest.mark.django_db
def test_test_mail_refused_with_5_7_139_explains_the_per_mailbox_and_the_tenant_wide_fix(
    admin_client, microsoft_365_smtp, trust_test_ca
):
    body = admin_client.post(TEST_URL, smtp_post(microsoft_365_smtp), **FETCH).content.decode()

    assert "SMTP AUTH is disabled" in body
    assert "SmtpClientAuthentication is disabled for the Tenant" in body  # the server's words
    assert "For this mailbox:" in body and "For the whole tenant:" in body
    assert PER_MAILBOX_FIX.replace("<", "&lt;").replace(">", "&gt;") in body
    assert TENANT_WIDE_FIX in body
    assert microsoft_365_smtp.messages == []


@pytest.mark.django_db
def test_immediate_delivery_refused_with_5_7_139_carries_both_fixes(
    microsoft_365_smtp, trust_test_ca, settings
):
    settings.EMAIL_BACKEND = "sender.backend.EmailBackend"
    settings.MAILCONFIG_DELIVERY = "immediate"
    store_smtp(microsoft_365_smtp)

    with pytest.raises(AuthorizationError) as raised:
        mail.send_mail("Alert", "Body", None, ["ops@example.com"])

    assert PER_MAILBOX_FIX in raised.value.hint and TENANT_WIDE_FIX in raised.value.hint
    assert PER_MAILBOX_FIX in str(raised.value)  # what a log shows


@pytest.mark.django_db(transaction=True)
def test_queued_delivery_refused_with_5_7_139_shows_both_fixes_in_the_email_log(
    admin_client, microsoft_365_smtp, trust_test_ca, settings
):
    settings.EMAIL_BACKEND = "sender.backend.EmailBackend"
    settings.MAILCONFIG_DELIVERY = "queued"
    forget_worker_connection()
    store_smtp(microsoft_365_smtp)

    mail.send_mail("Alert", "Body", None, ["ops@example.com"])
    run_due_tasks()
    forget_worker_connection()

    row = OutboxMessage.objects.get()
    assert row.status == Status.FAILED  # refused for good: no retry helps
    assert row.last_error_code == "535" and "SMTP AUTH is disabled" in row.last_error
    assert PER_MAILBOX_FIX in row.last_error_hint and TENANT_WIDE_FIX in row.last_error_hint
    body = admin_client.get(reverse("settings_app:email_log_detail", args=[row.pk])).content
    page = body.decode()
    assert "For this mailbox:" in page and "For the whole tenant:" in page
    assert microsoft_365_smtp.messages == []


@pytest.mark.django_db
def test_5_7_30_says_basic_auth_is_gone_and_how_to_switch(
    admin_client, smtp_starttls, trust_test_ca
):
    smtp_starttls.injections.auth_reply = (
        "550 5.7.30 Basic authentication is not supported for Client Submission."
    )
    body = admin_client.post(TEST_URL, smtp_post(smtp_starttls), **FETCH).content.decode()
    assert "no longer accepts Basic authentication" in body
    assert "end of December 2026" in body and "Sign-in: Application" in body


@pytest.mark.django_db
def test_5_7_3_with_basic_auth_mentions_the_policies_that_block_it(
    smtp_starttls, trust_test_ca, settings
):
    settings.EMAIL_BACKEND = "sender.backend.EmailBackend"
    settings.MAILCONFIG_DELIVERY = "immediate"
    store_smtp(smtp_starttls)
    smtp_starttls.injections.auth_reply = "535 5.7.3 Authentication unsuccessful"

    with pytest.raises(AuthenticationError) as raised:
        mail.send_mail("Alert", "Body", None, ["ops@example.com"])

    assert "Security defaults" in raised.value.hint
