"""Check permissions (sender.permission_check) against the local SMTP servers and HTTPS fakes.

Nothing may be sent: every test also checks that no message reached the server.
"""

from __future__ import annotations

import time

import pytest

from sender.permission_check import FAIL, OK, WARN, Finding, check_permissions
from settings_app.values import MailSettings
from tests.factories import LOCAL_SMTP_ACCOUNT
from tests.servers.smtp_server import BlackHoleServer
from tests.test_api_transports import CLIENT_ID, SECRET, TENANT, gmail_config, graph_config

# The SMTP check records the server's TLS certificate for the expiry radar.
pytestmark = pytest.mark.django_db


def statuses(findings: list[Finding]) -> list[str]:
    return [finding.status for finding in findings]


def text_of(findings: list[Finding]) -> str:
    return "\n".join(f"{f.status} {f.text} {f.hint}" for f in findings)


def smtp_config(server, **overrides) -> MailSettings:
    values = {
        "mode": "smtp",
        "port": server.port,
        "security": "tls",
        "auth": "basic",
        "admin_address": "admin@example.com",
        **LOCAL_SMTP_ACCOUNT,
    }
    return MailSettings(**(values | overrides))


# -- Microsoft Graph ------------------------------------------------------------------


@pytest.fixture
def graph(microsoft_fake):
    microsoft_fake.add_app(TENANT, CLIENT_ID, SECRET)
    return microsoft_fake


def test_graph_all_in_place_is_all_ok_and_sends_nothing(graph):
    findings = check_permissions(graph_config())

    assert statuses(findings) == [OK, OK, OK]
    assert "roles contain Mail.Send" in findings[1].text
    assert "mailer@contoso.com exists and the app may send as it" in findings[2].text
    assert graph.sent == [] and graph.sent_json == []


def test_graph_token_without_mail_send_role_fails_with_the_consent_hint(microsoft_fake):
    microsoft_fake.add_app(TENANT, CLIENT_ID, SECRET, roles=("User.Read.All",))

    findings = check_permissions(graph_config())

    failure = next(f for f in findings if f.status == FAIL)
    assert "lack Mail.Send" in failure.text and "User.Read.All" in failure.text
    assert "grant admin consent" in failure.hint
    assert microsoft_fake.requests["graph_send"] == 0


def test_graph_mailbox_withheld_by_an_access_policy_gets_the_policy_hint(graph):
    graph.policy_denied_mailboxes.add("mailer@contoso.com")

    findings = check_permissions(graph_config())

    assert findings[-1].status == FAIL
    assert findings[-1].code == "ErrorAccessDenied"
    assert "denied the app access to the mailbox mailer@contoso.com" in findings[-1].text
    assert "Application Access Policy" in findings[-1].hint
    assert "Test-ApplicationAccessPolicy" in findings[-1].hint


def test_graph_unknown_mailbox_is_named(graph):
    graph.missing_mailboxes.add("mailer@contoso.com")

    findings = check_permissions(graph_config())

    assert findings[-1].status == FAIL
    assert findings[-1].code == "ErrorInvalidUser"
    assert "not a mailbox in this tenant" in findings[-1].text


def test_graph_wrong_secret_fails_at_the_token(graph):
    findings = check_permissions(graph_config(api_client_secret="wrong-secret"))

    assert statuses(findings) == [FAIL]
    assert findings[0].code == "AADSTS7000215"
    assert "wrong-secret" not in text_of(findings)


# -- Gmail API ------------------------------------------------------------------------


@pytest.fixture
def gmail(google_fake):
    key = google_fake.make_service_account()
    google_fake.delegate(key["client_id"])
    google_fake.add_user("mailer@example.org")
    google_fake.key = key
    return google_fake


def test_gmail_delegation_and_scope_in_place_is_all_ok_and_sends_nothing(gmail):
    findings = check_permissions(gmail_config(gmail.key))

    assert statuses(findings) == [OK, OK, OK], text_of(findings)
    assert "Domain-wide delegation is in place" in findings[0].text
    assert gmail.key["client_id"] in findings[0].text
    assert "gmail.send is granted" in findings[1].text
    assert "Gmail API is enabled" in findings[2].text
    assert gmail.sent == []


def test_gmail_without_delegation_fails_with_the_delegation_hint(google_fake):
    key = google_fake.make_service_account()
    google_fake.add_user("mailer@example.org")

    findings = check_permissions(gmail_config(key))

    assert statuses(findings) == [FAIL]
    assert findings[0].code == "unauthorized_client"
    assert "mailer@example.org" in findings[0].text
    assert "elegation" in findings[0].hint
    assert google_fake.requests["gmail_send"] == 0


def test_gmail_api_disabled_in_the_project_is_explained(gmail):
    gmail.fail_next(
        "gmail_send",
        403,
        {
            "error": {
                "code": 403,
                "message": "Gmail API has not been used in project 123 before or it is disabled.",
                "errors": [{"reason": "accessNotConfigured"}],
            }
        },
    )

    findings = check_permissions(gmail_config(gmail.key))

    assert findings[-1].status == FAIL
    assert "Enable the Gmail API" in findings[-1].hint


# -- SMTP -----------------------------------------------------------------------------


def test_smtp_lists_the_mechanisms_offered_after_starttls_and_logs_in(smtp_starttls, trust_test_ca):
    findings = check_permissions(smtp_config(smtp_starttls))

    assert statuses(findings) == [OK, OK, OK], text_of(findings)
    assert "encrypted with STARTTLS" in findings[0].text
    assert findings[1].text == "The server offers AUTH after STARTTLS: LOGIN, PLAIN, XOAUTH2."
    assert "Login as alice@example.com with the password accepted" in findings[2].text
    assert smtp_starttls.auth_mechanisms == ["PLAIN"]
    assert smtp_starttls.messages == []


def test_smtp_server_without_auth_says_smtp_auth_is_disabled(smtp_starttls, trust_test_ca):
    smtp_starttls.injections.offer_auth = False

    findings = check_permissions(smtp_config(smtp_starttls))

    failure = next(f for f in findings if f.status == FAIL)
    assert failure.code == "NO-AUTH"
    assert "SMTP AUTH is disabled: the server offers no AUTH after STARTTLS" in failure.text
    assert smtp_starttls.messages == []


def test_microsoft_365_without_auth_explains_what_that_means(
    smtp_starttls, trust_test_ca, settings
):
    # The local server stands in for Exchange Online: its name is the cloud's SMTP host.
    settings.MAILCONFIG_AZURE_ENVIRONMENTS = {
        key: {**row, "smtp_host": "localhost"}
        for key, row in settings.MAILCONFIG_AZURE_ENVIRONMENTS.items()
    }
    smtp_starttls.injections.offer_auth = False

    findings = check_permissions(smtp_config(smtp_starttls))

    failure = next(f for f in findings if f.status == FAIL)
    assert "Microsoft 365 offers no AUTH after STARTTLS" in failure.text
    assert "authenticated client submission" in failure.hint
    assert "Set-TransportConfig" in failure.hint or "Authenticated SMTP" in failure.hint


def test_microsoft_365_smtp_auth_disabled_for_the_mailbox_shows_at_login(
    smtp_starttls, trust_test_ca, settings
):
    settings.MAILCONFIG_AZURE_ENVIRONMENTS = {
        key: {**row, "smtp_host": "localhost"}
        for key, row in settings.MAILCONFIG_AZURE_ENVIRONMENTS.items()
    }
    smtp_starttls.injections.auth_reply = (
        "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled "
        "for the Tenant."
    )

    findings = check_permissions(smtp_config(smtp_starttls))

    assert findings[-1].status == FAIL
    assert findings[-1].text.startswith("Login refused: ")
    assert "SMTP AUTH is disabled" in findings[-1].text
    assert any("only a login shows that" in f.text for f in findings)


def test_basic_auth_against_microsoft_365_warns_of_the_retirement(
    smtp_starttls, trust_test_ca, settings
):
    settings.MAILCONFIG_AZURE_ENVIRONMENTS = {
        key: {**row, "smtp_host": "localhost"}
        for key, row in settings.MAILCONFIG_AZURE_ENVIRONMENTS.items()
    }

    findings = check_permissions(smtp_config(smtp_starttls))

    assert findings[-1].status == WARN
    assert "December 2026" in findings[-1].hint


def test_smtp_wrong_password_is_a_refused_login_without_the_password(smtp_starttls, trust_test_ca):
    findings = check_permissions(smtp_config(smtp_starttls, password="not-the-password"))

    assert findings[-1].status == FAIL
    assert findings[-1].text.startswith("Login refused: ")
    assert "not-the-password" not in text_of(findings)


def test_smtp_basic_with_only_xoauth2_offered_fails(smtp_server_factory, trust_test_ca):
    server = smtp_server_factory(
        security="starttls",
        users={"alice@example.com": "s3cret"},
        exclude_mechanisms=("LOGIN", "PLAIN"),
    )

    findings = check_permissions(smtp_config(server))

    assert any(f.status == FAIL and "needs AUTH PLAIN or LOGIN" in f.text for f in findings)


def test_smtp_without_username_warns_and_does_not_log_in(smtp_starttls, trust_test_ca):
    findings = check_permissions(smtp_config(smtp_starttls, username="", password=""))

    assert findings[-1].status == WARN
    assert "no login was tried" in findings[-1].text
    assert smtp_starttls.auth_mechanisms == []


def test_smtp_unreachable_server_is_one_failure(trust_test_ca):
    findings = check_permissions(
        MailSettings(mode="smtp", server_name="127.0.0.1", port=1, security="tls")
    )

    assert statuses(findings) == [FAIL]
    assert "127.0.0.1:1" in findings[0].text


def test_the_check_is_bounded_by_the_time_limit(trust_test_ca):
    with BlackHoleServer() as hole:
        config = MailSettings(mode="smtp", server_name="127.0.0.1", port=hole.port, security="tls")
        started = time.monotonic()
        findings = check_permissions(config, timeout=1)
        elapsed = time.monotonic() - started

    assert elapsed < 5  # generous: the machine is shared
    assert findings[-1].status == FAIL
    assert findings[-1].code == "TIMEOUT"


def test_no_auth_offered_is_said_once_not_again_as_a_refused_login(smtp_starttls, trust_test_ca):
    smtp_starttls.injections.offer_auth = False

    findings = check_permissions(smtp_config(smtp_starttls))

    assert statuses(findings).count(FAIL) == 1
