"""An HTTPS answer cut short (the whole length announced, the connection closed halfway) is
a clear, temporary error with a hint, wherever the shared session reads a body."""

from __future__ import annotations

import pytest

from sender.errors import MailConnectionError
from sender.retries import is_transient
from sender.transports.graph import GraphTransport
from tests.factories import PAGE_URL, smtp_basic_post
from tests.test_api_transports import CLIENT_ID, GRAPH_VALUES, SECRET, TENANT, graph_config, message

pytestmark = pytest.mark.django_db
TEST_URL = PAGE_URL + "test-mail/"
FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}


def test_a_token_answer_cut_short_is_a_clear_error_with_a_hint_in_test_mail(
    admin_client, microsoft_fake
):
    microsoft_fake.add_app(TENANT, CLIENT_ID, SECRET)
    microsoft_fake.cut_short.add("token")
    body = admin_client.post(TEST_URL, smtp_basic_post(**GRAPH_VALUES), **FETCH).content.decode()
    assert "Test mail failed</strong> at “Obtain token”" in body
    assert "closed the connection before its whole answer arrived" in body
    assert "proxy, firewall or TLS-inspecting device" in body  # the hint
    assert "Unexpected error" not in body
    assert "urllib3" not in body and "IncompleteRead" not in body
    assert microsoft_fake.sent == []


def test_a_graph_answer_cut_short_is_a_temporary_failure_so_the_message_is_retried(
    microsoft_fake,
):
    microsoft_fake.add_app(TENANT, CLIENT_ID, SECRET)
    microsoft_fake.cut_short.add("graph_send")
    microsoft_fake.fail_next("graph_send", 503, {"error": {"code": "x", "message": "y" * 300}})
    with pytest.raises(MailConnectionError) as caught, GraphTransport(graph_config()) as transport:
        transport.send(message())
    assert caught.value.code == "ANSWER-CUT-SHORT"
    assert caught.value.step == "Send message"
    assert is_transient(caught.value)
