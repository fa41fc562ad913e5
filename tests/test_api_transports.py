"""Microsoft Graph and Gmail API transports against local HTTPS fakes (MSAL and google-auth run for real)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import requests
import trustme
from django.core.mail import EmailMessage, EmailMultiAlternatives

from sender.errors import (
    AuthenticationError,
    AuthorizationError,
    ConfigurationError,
    MailConnectionError,
    RateLimited,
    TLSError,
)
from sender.tokens import jwt_claims
from sender.transcript import Transcript
from sender.transports.gmail import GmailTransport
from sender.transports.graph import GraphTransport
from sender.transports.http_api import retry_after
from settings_app.values import MailSettings
from tests.fakes.base import unsigned_jwt
from tests.servers.smtp_server import refused_port

TENANT = "9f2d7c4e-1111-4222-8333-444455556666"
CLIENT_ID = "1b2c3d4e-1111-2222-3333-444455556666"
SECRET = "graph-secret-value"
# API mode with Microsoft Graph, as the fake's app registration for TENANT knows it.
GRAPH_VALUES: dict[str, Any] = {
    "mode": "api",
    "api_provider": "microsoft",
    "api_tenant_id": TENANT,
    "api_client_id": CLIENT_ID,
    "api_client_secret": SECRET,
    "from_address": "mailer@contoso.com",
}


def graph_config(**overrides) -> MailSettings:
    values = GRAPH_VALUES | {"admin_address": "admin@contoso.com", "version": 1}
    return MailSettings(**(values | overrides))


def gmail_config(key: dict, **overrides) -> MailSettings:
    values: dict[str, Any] = {
        "mode": "api",
        "api_provider": "google",
        "service_account_key": json.dumps(key),
        "from_address": "mailer@example.org",
        "admin_address": "admin@example.org",
        "version": 1,
    }
    values.update(overrides)
    return MailSettings(**values)


def message(**kwargs) -> EmailMessage:
    kwargs.setdefault("to", ["bob@example.com"])
    return EmailMessage("Hello", "Body", "mailer@contoso.com", **kwargs)


@pytest.fixture
def graph(microsoft_fake):
    microsoft_fake.add_app(TENANT, CLIENT_ID, SECRET)
    return microsoft_fake


@pytest.fixture
def gmail(google_fake):
    key = google_fake.make_service_account()
    google_fake.delegate(key["client_id"])
    google_fake.add_user("mailer@example.org")
    google_fake.key = key
    return google_fake


def send(transport_class, config, *messages, transcript=None):
    with transport_class(config, transcript=transcript) as transport:
        return [transport.send(item).reply for item in messages or (message(),)]


# Microsoft Graph ------------------------------------------------------------


def test_graph_sends_the_mime_message_as_the_from_address(graph):
    item = EmailMultiAlternatives("Report", "plain", "mailer@contoso.com", ["bob@example.com"])
    item.attach_alternative("<p>html</p>", "text/html")
    item.attach("report.csv", "a,b\n1,2\n", "text/csv")
    [result] = send(GraphTransport, graph_config(), item)
    assert result.startswith("202 Accepted")
    sent = graph.sent[0]
    assert sent.user == "mailer@contoso.com"
    parts = [part.get_content_type() for part in sent.message.walk()]
    assert {"text/plain", "text/html", "text/csv"} <= set(parts)


def test_graph_bcc_goes_in_the_mime_copy_for_graph_to_deliver(graph):
    send(GraphTransport, graph_config(), message(bcc=["secret@example.com"]))
    assert graph.sent[0].message["Bcc"] == "secret@example.com"


def test_graph_one_token_for_many_messages(graph):
    send(GraphTransport, graph_config(), *[message() for _ in range(5)])
    send(GraphTransport, graph_config(), message())  # a new transport reuses the cached token
    assert graph.tokens_issued["client_credentials"] == 1
    assert graph.requests["discovery"] == 1
    assert len(graph.sent) == 6


def test_graph_reuses_the_token_msals_cache_holds(graph):
    send(GraphTransport, graph_config())
    transcript = Transcript()
    send(GraphTransport, graph_config(), transcript=transcript)
    [token_step] = [step for step in transcript.steps if step.name == "Obtain token"]
    assert token_step.details[0].startswith("Reused the cached token, valid until")
    assert graph.tokens_issued["client_credentials"] == 1


def test_jwt_claims_are_read_unverified_and_empty_for_a_malformed_token():
    assert jwt_claims(unsigned_jwt({"roles": ["Mail.Send"]})) == {"roles": ["Mail.Send"]}
    assert jwt_claims("") == {}
    assert jwt_claims("not.a.jwt") == {}


def test_graph_transcript_shows_roles(graph):
    transcript = Transcript()
    send(GraphTransport, graph_config(), transcript=transcript)
    details = " ".join(d for step in transcript.steps for d in step.details)
    assert "roles" in details and "Mail.Send" in details
    assert SECRET not in details


def test_graph_token_without_mail_send_is_flagged_and_refused(microsoft_fake):
    microsoft_fake.add_app(TENANT, CLIENT_ID, SECRET, roles=("User.Read.All",))
    transcript = Transcript()
    with pytest.raises(AuthorizationError) as caught:
        send(GraphTransport, graph_config(), transcript=transcript)
    assert caught.value.code == "ErrorAccessDenied"
    assert "Mail.Send" in caught.value.hint
    token_step = next(step for step in transcript.steps if step.name == "Obtain token")
    assert any("Mail.Send is missing" in d for d in token_step.details)


@pytest.mark.parametrize(
    ("setup", "code", "error"),
    [
        ({"secret": "wrong"}, "AADSTS7000215", AuthenticationError),
        ({"expired_secret": True}, "AADSTS7000222", AuthenticationError),
        ({"client_id": "00000000-0000-0000-0000-000000000000"}, "AADSTS700016", ConfigurationError),
    ],
)
def test_graph_credential_errors_are_explained(microsoft_fake, setup, code, error):
    app = {"client_id": CLIENT_ID, "secret": SECRET, "expired_secret": False} | setup
    microsoft_fake.add_app(TENANT, app["client_id"], SECRET, expired_secret=app["expired_secret"])
    with pytest.raises(error) as caught:
        send(GraphTransport, graph_config(api_client_secret=app["secret"]))
    assert caught.value.code == code
    assert caught.value.hint


def test_graph_unknown_tenant(graph):
    with pytest.raises(ConfigurationError) as caught:
        send(GraphTransport, graph_config(api_tenant_id="nowhere.example"))
    assert caught.value.code == "AADSTS90002"


def test_graph_consent_missing(graph):
    graph.fail_next(
        "token",
        400,
        {
            "error": "invalid_client",
            "error_description": "AADSTS65001: The user or administrator has not consented to use the application.",
        },
    )
    with pytest.raises(AuthorizationError) as caught:
        send(GraphTransport, graph_config())
    assert caught.value.code == "AADSTS65001"


def test_graph_honours_retry_after_then_succeeds(graph):
    graph.fail_next("graph_send", 429, {"error": {"code": "TooManyRequests"}}, {"Retry-After": "1"})
    transcript = Transcript()
    send(GraphTransport, graph_config(), transcript=transcript)
    assert len(graph.sent) == 1
    assert any("retrying in 1 s" in d for step in transcript.steps for d in step.details)


def test_retry_after_is_read_as_seconds_or_an_http_date():
    def wait(value: str, attempt: int = 0) -> float:
        response = requests.Response()
        response.headers["Retry-After"] = value
        return retry_after(response, attempt)

    assert wait("7") == 7.0
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    assert 50 <= wait(in_a_minute) <= 60
    assert wait("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # already past
    assert wait("soon", attempt=2) == 4.0  # unreadable: the backoff of the attempt


def test_graph_gives_up_when_throttled_too_long(graph):
    graph.fail_next(
        "graph_send",
        429,
        {"error": {"code": "TooManyRequests", "message": "Too many requests"}},
        {"Retry-After": "3600"},
    )
    with pytest.raises(RateLimited):
        send(GraphTransport, graph_config())


def test_graph_retries_once_with_a_new_token_after_401(graph):
    send(GraphTransport, graph_config())
    graph.issued.clear()  # every token the app holds is now unknown to Graph
    send(GraphTransport, graph_config())
    assert graph.tokens_issued["client_credentials"] == 2
    assert len(graph.sent) == 2


# Gmail API ------------------------------------------------------------------


def test_gmail_sends_as_the_delegated_user(gmail):
    [result] = send(GmailTransport, gmail_config(gmail.key), message(bcc=["hidden@example.com"]))
    assert result.startswith("message id ")
    sent = gmail.sent[0]
    assert sent.user == "mailer@example.org"
    assert sent.message["Bcc"] == "hidden@example.com"


def test_gmail_one_token_for_many_messages(gmail):
    send(GmailTransport, gmail_config(gmail.key), *[message() for _ in range(3)])
    send(GmailTransport, gmail_config(gmail.key), message())
    assert gmail.tokens_issued["jwt_bearer"] == 1


def test_gmail_without_delegation(google_fake):
    key = google_fake.make_service_account()
    google_fake.add_user("mailer@example.org")
    with pytest.raises(AuthorizationError) as caught:
        send(GmailTransport, gmail_config(key))
    assert caught.value.code == "unauthorized_client"
    assert key["client_id"] in caught.value.hint
    assert "24 hours" in caught.value.hint


def test_gmail_unknown_user(gmail):
    with pytest.raises(ConfigurationError) as caught:
        send(GmailTransport, gmail_config(gmail.key, from_address="nobody@gmail.com"))
    assert caught.value.code == "invalid_grant"
    assert "consumer" in caught.value.hint


def test_gmail_failed_precondition(gmail):
    gmail.fail_next(
        "gmail_send",
        400,
        {
            "error": {
                "code": 400,
                "message": "Precondition check failed.",
                "errors": [{"reason": "failedPrecondition"}],
                "status": "FAILED_PRECONDITION",
            }
        },
    )
    with pytest.raises(ConfigurationError) as caught:
        send(GmailTransport, gmail_config(gmail.key))
    assert caught.value.code == "failedPrecondition"


def test_gmail_forbidden(gmail):
    gmail.fail_next(
        "gmail_send",
        403,
        {
            "error": {
                "code": 403,
                "message": "Gmail API has not been used",
                "errors": [{"reason": "accessNotConfigured"}],
            }
        },
    )
    with pytest.raises(AuthorizationError) as caught:
        send(GmailTransport, gmail_config(gmail.key))
    assert "Enable the Gmail API" in caught.value.hint


def test_gmail_refuses_a_key_for_another_token_endpoint(gmail):
    key = dict(gmail.key, token_uri="https://attacker.example/token")
    with pytest.raises(ConfigurationError):
        send(GmailTransport, gmail_config(key))
    assert gmail.requests["token"] == 0


def test_gmail_rate_limit_is_explained(gmail):
    gmail.fail_next(
        "gmail_send",
        429,
        {
            "error": {
                "code": 429,
                "message": "User-rate limit exceeded.  Retry after 2026-11-24T10:00:00.000Z",
                "errors": [{"reason": "rateLimitExceeded"}],
                "status": "RESOURCE_EXHAUSTED",
            }
        },
        {"Retry-After": "3600"},
    )
    with pytest.raises(RateLimited) as caught:
        send(GmailTransport, gmail_config(gmail.key))
    assert caught.value.code == "rateLimitExceeded"
    assert "2,000 messages a day" in caught.value.hint
    assert gmail.sent == []


# Networks that misbehave ----------------------------------------------------


def test_an_api_that_never_answers_times_out_with_the_transports_timeout(graph):
    graph.delays["graph_send"] = 30
    started = time.monotonic()
    with (
        pytest.raises(MailConnectionError) as caught,
        GraphTransport(graph_config(), timeout=0.5) as transport,
    ):
        transport.send(message())
    assert caught.value.code == "TIMEOUT"
    assert "within 0.5 seconds" in caught.value.message
    assert time.monotonic() - started < 3


def test_a_token_endpoint_that_never_answers_times_out_with_the_transports_timeout(graph):
    graph.delays["token"] = 30
    started = time.monotonic()
    with pytest.raises(MailConnectionError) as caught:
        GraphTransport(graph_config(), timeout=0.5).open()
    assert caught.value.code == "TIMEOUT"
    assert caught.value.step == "Obtain token"
    assert "within 0.5 seconds" in caught.value.message
    assert time.monotonic() - started < 3


@pytest.fixture
def other_ca_file(tmp_path, settings) -> str:
    """Trust a CA that did not sign the fakes' certificates (a wrong MAILCONFIG_CA_FILE)."""
    path = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    settings.MAILCONFIG_CA_FILE = str(path)
    return str(path)


def test_graph_with_an_untrusted_certificate_is_explained(graph, other_ca_file):
    with pytest.raises(TLSError) as caught:
        send(GraphTransport, graph_config())
    assert caught.value.code == "CERTIFICATE"
    assert caught.value.step == "Obtain token"
    assert "MAILCONFIG_CA_FILE" in caught.value.hint
    assert graph.tokens_issued["client_credentials"] == 0


def test_gmail_with_an_untrusted_certificate_is_explained(gmail, other_ca_file):
    with pytest.raises(TLSError) as caught:
        send(GmailTransport, gmail_config(gmail.key))
    assert caught.value.code == "CERTIFICATE"
    assert "MAILCONFIG_CA_FILE" in caught.value.hint
    assert gmail.tokens_issued["jwt_bearer"] == 0


# How Test Mail shows the hosts being reached in API mode -------------------------------


def step_names(transcript: Transcript) -> list[str]:
    return [step.name for step in transcript.steps]


def test_graph_test_mail_shows_how_each_host_is_reached(graph):
    transcript = Transcript()
    send(GraphTransport, graph_config(), transcript=transcript)
    assert step_names(transcript) == [
        "Connect to 127.0.0.1",  # the identity platform (the fake serves both)
        "Obtain token",
        "Connect to 127.0.0.1",  # Microsoft Graph
        "Send message",
    ]
    details = " ".join(transcript.steps[0].details)
    assert "TLSv1." in details and "Certificate valid until" in details


def test_gmail_test_mail_shows_how_each_host_is_reached(gmail):
    transcript = Transcript()
    send(GmailTransport, gmail_config(gmail.key), transcript=transcript)
    assert step_names(transcript)[::2] == ["Connect to 127.0.0.1", "Connect to 127.0.0.1"]
    assert "Certificate for" in " ".join(transcript.steps[2].details)


def test_normal_sending_makes_no_extra_connection(graph):
    send(GraphTransport, graph_config())  # no transcript: nobody to show it to
    assert graph.connections <= 1  # the shared session may even reuse an earlier one


def test_an_unreachable_identity_platform_is_explained_before_any_token_request(graph, settings):
    unreachable = f"https://127.0.0.1:{refused_port()}"
    row = settings.MAILCONFIG_AZURE_ENVIRONMENTS["azure"]
    settings.MAILCONFIG_AZURE_ENVIRONMENTS = {"azure": {**row, "authority_host": unreachable}}
    transcript = Transcript()
    with pytest.raises(MailConnectionError) as caught:
        send(GraphTransport, graph_config(), transcript=transcript)
    assert caught.value.code == "ECONNREFUSED"
    assert step_names(transcript) == ["Connect to 127.0.0.1"]
    assert graph.tokens_issued["client_credentials"] == 0


def test_an_untrusted_certificate_is_explained_at_the_connection(graph, other_ca_file):
    transcript = Transcript()
    with pytest.raises(TLSError) as caught:
        send(GraphTransport, graph_config(), transcript=transcript)
    assert caught.value.code == "CERTIFICATE"
    assert caught.value.step == "Connect to 127.0.0.1"


def test_through_a_proxy_the_connection_is_not_tried_and_its_password_not_shown(graph, monkeypatch):
    proxy_port = refused_port()
    monkeypatch.setenv("HTTPS_PROXY", f"http://proxyuser:proxy-secret-7c1@127.0.0.1:{proxy_port}")
    for name in ("NO_PROXY", "no_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    transcript = Transcript()
    with pytest.raises(MailConnectionError):  # the proxy itself is down
        send(GraphTransport, graph_config(), transcript=transcript)
    first = " ".join(transcript.steps[0].details)
    assert f"through the proxy 127.0.0.1:{proxy_port}" in first
    assert "proxy-secret-7c1" not in repr(transcript) and "proxyuser" not in first
