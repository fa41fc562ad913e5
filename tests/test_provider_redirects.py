"""Provider calls never follow a redirect: a 307 would re-post secrets wherever it points.

Each endpoint of the HTTPS fakes answers 307 to a plain-http server that records what
reaches it: nothing may, and the error names where the redirect pointed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from oauth.grant import StoredGrantTokenProvider
from oauth.models import OAuthGrant
from sender.errors import MailError, ProviderError
from sender.http import RedirectRefused, VerifiedSession
from sender.transports.gmail import GmailTransport
from sender.transports.graph import GraphTransport
from tests.oauth_helpers import (
    DISCONNECT_URL,
    authorize_google,
    authorize_microsoft,
    consent,
    google_post,
    local,
    microsoft_post,
    register_google,
    register_microsoft,
    start_consent,
    stored,
)
from tests.servers.http_server import LocalHTTPServer
from tests.test_api_transports import gmail_config, graph_config, message

pytestmark = pytest.mark.django_db


class RecordingServer:
    """A plain-http server that records every request and answers 200 with a token."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        recorded = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                recorded.append((self.command, self.path, self.rfile.read(length)))
                body = b'{"access_token": "stolen", "expires_in": 3600, "token_type": "Bearer"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _record

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = LocalHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/collect"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def target() -> Iterator[RecordingServer]:
    with RecordingServer() as server:
        yield server


def redirect_next(fake, endpoint: str, target: RecordingServer) -> None:
    fake.fail_next(endpoint, 307, {}, {"Location": target.url})


def assert_refused(error: MailError, target: RecordingServer) -> None:
    assert error.code == "REDIRECT"
    assert target.url in error.message
    assert "nothing was sent there" in error.message
    assert target.requests == []


# The session itself -----------------------------------------------------------


def test_the_session_refuses_a_redirect_and_names_its_target(graph_fake_url, target, ca_file):
    with pytest.raises(RedirectRefused) as caught:
        VerifiedSession(ca_file, 5).post(graph_fake_url, data={"secret": "x"}, allow_redirects=True)
    assert caught.value.location == target.url
    assert target.requests == []


@pytest.fixture
def graph_fake_url(microsoft_fake, target) -> str:
    redirect_next(microsoft_fake, "token", target)
    return f"{microsoft_fake.base_url}/tenant/oauth2/v2.0/token"


def test_a_redirect_target_is_shown_without_its_query(microsoft_fake, target, ca_file):
    microsoft_fake.fail_next("token", 307, {}, {"Location": target.url + "?code=echoed-secret"})
    with pytest.raises(RedirectRefused) as caught:
        VerifiedSession(ca_file, 5).post(f"{microsoft_fake.base_url}/t/oauth2/v2.0/token")
    error = caught.value.mail_error("Obtain token")
    assert "echoed-secret" not in error.message + error.provider_text
    assert target.url + "?…" in error.message


# API mode: tokens and sending -------------------------------------------------


@pytest.fixture
def graph(microsoft_fake):
    from tests.test_api_transports import CLIENT_ID, SECRET, TENANT

    microsoft_fake.add_app(TENANT, CLIENT_ID, SECRET)
    return microsoft_fake


@pytest.fixture
def gmail(google_fake):
    key = google_fake.make_service_account()
    google_fake.delegate(key["client_id"])
    google_fake.add_user("mailer@example.org")
    google_fake.key = key
    return google_fake


def test_client_credentials_token_request_is_not_redirected(graph, target):
    redirect_next(graph, "token", target)
    with pytest.raises(ProviderError) as caught:
        GraphTransport(graph_config()).open()
    assert_refused(caught.value, target)


def test_service_account_token_request_is_not_redirected(gmail, target):
    redirect_next(gmail, "token", target)
    with pytest.raises(ProviderError) as caught:
        GmailTransport(gmail_config(gmail.key)).open()
    assert_refused(caught.value, target)


def test_graph_send_is_not_redirected(graph, target):
    redirect_next(graph, "graph_send", target)
    with pytest.raises(ProviderError) as caught, GraphTransport(graph_config()) as transport:
        transport.send(message())
    assert_refused(caught.value, target)
    assert graph.sent == []


def test_gmail_send_is_not_redirected(gmail, target):
    redirect_next(gmail, "gmail_send", target)
    with pytest.raises(ProviderError) as caught, GmailTransport(gmail_config(gmail.key)) as t:
        t.send(message())
    assert_refused(caught.value, target)


# SMTP OAuth: consent, refresh, revocation -------------------------------------


def test_microsoft_code_exchange_is_not_redirected(admin_client, microsoft_fake, ca_file, target):
    register_microsoft(microsoft_fake)
    back = consent(start_consent(admin_client, microsoft_post()), ca_file)
    redirect_next(microsoft_fake, "token", target)
    page = admin_client.get(local(back)).content.decode()
    assert target.url in page and "was not followed" in page
    assert target.requests == []
    assert not OAuthGrant.objects.exists()


def test_google_code_exchange_is_not_redirected(admin_client, google_fake, ca_file, target):
    register_google(google_fake)
    back = consent(start_consent(admin_client, google_post()), ca_file)
    redirect_next(google_fake, "token", target)
    page = admin_client.get(local(back)).content.decode()
    assert target.url in page and "was not followed" in page
    assert target.requests == []
    assert not OAuthGrant.objects.exists()


def test_microsoft_refresh_is_not_redirected(admin_client, microsoft_fake, ca_file, target):
    authorize_microsoft(admin_client, microsoft_fake, ca_file)
    redirect_next(microsoft_fake, "token", target)
    with pytest.raises(ProviderError) as caught:
        StoredGrantTokenProvider(stored()).get_token(force=True)
    assert_refused(caught.value, target)


def test_google_refresh_is_not_redirected(admin_client, google_fake, ca_file, target):
    authorize_google(admin_client, google_fake, ca_file)
    redirect_next(google_fake, "token", target)
    with pytest.raises(ProviderError) as caught:
        StoredGrantTokenProvider(stored()).get_token(force=True)
    assert_refused(caught.value, target)


def test_google_revocation_is_not_redirected(admin_client, google_fake, ca_file, target, caplog):
    authorize_google(admin_client, google_fake, ca_file)
    redirect_next(google_fake, "revoke", target)
    with caplog.at_level(logging.WARNING, logger="oauth.consent"):
        page = admin_client.post(DISCONNECT_URL, follow=True)
    assert b"Disconnected" in page.content  # the grant is deleted here all the same
    assert google_fake.revoked == []
    assert target.requests == []
    assert target.url in caplog.text and "was not followed" in caplog.text
