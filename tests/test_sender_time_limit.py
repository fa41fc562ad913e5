"""The whole Test Mail is bounded by MAILCONFIG_TIMEOUT; normal sending by its own per-message limit."""

from __future__ import annotations

import threading
import time

import pytest
from django.core import mail

from sender.deadline import MESSAGE, remaining, time_limit
from sender.errors import MailConnectionError
from sender.transports.graph import GraphTransport
from settings_app.models import MailServerConfig
from tests.factories import PAGE_URL, smtp_basic_post, smtp_post, store_smtp
from tests.test_api_transports import CLIENT_ID, GRAPH_VALUES, SECRET, TENANT, graph_config, message

pytestmark = pytest.mark.django_db
TEST_URL = PAGE_URL + "test-mail/"
FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}
LIMIT = 1.0
# Generous: the point is "about one limit", not "many timeouts added up".
UPPER_BOUND = LIMIT * 2 + 1


@pytest.fixture
def short_limit(settings):
    settings.MAILCONFIG_TIMEOUT = LIMIT
    return LIMIT


def graph_post():
    return smtp_basic_post(**GRAPH_VALUES)


def timed_test_mail(client, post) -> tuple[str, float]:
    started = time.monotonic()
    body = client.post(TEST_URL, post, **FETCH).content.decode()
    return body, time.monotonic() - started


# The deadline itself --------------------------------------------------------


def test_without_a_time_limit_each_step_keeps_its_own_timeout():
    assert remaining(15.0, "Connect") == 15.0


def test_inside_a_time_limit_a_step_gets_at_most_the_time_left():
    with time_limit(10):
        assert 9 < remaining(15.0) <= 10
        assert remaining(2.0) == 2.0


def test_no_time_left_is_a_timeout_naming_the_step_and_the_limit():
    with time_limit(0.01):
        time.sleep(0.02)
        with pytest.raises(MailConnectionError) as caught:
            remaining(15.0, "EHLO")
    assert caught.value.code == "TIMEOUT"
    assert caught.value.step == "EHLO"
    assert "limited to 0.01 seconds" in caught.value.hint
    assert "“EHLO”" in caught.value.hint


def test_the_limit_belongs_to_the_thread_that_set_it():
    seen = []
    with time_limit(0.01):
        time.sleep(0.02)
        # The HTTP session is shared by every thread: another request must not inherit this limit.
        worker = threading.Thread(target=lambda: seen.append(remaining(15.0)))
        worker.start()
        worker.join()
    assert seen == [15.0]


# Test Mail over SMTP --------------------------------------------------------


def test_slow_steps_add_up_to_the_limit_not_past_it(
    admin_client, smtp_starttls, trust_test_ca, short_limit
):
    # Each step alone answers within its timeout; together they would take 1.4 s.
    smtp_starttls.injections.delays.update({"AUTH": 0.7, "MAIL": 0.7})
    body, elapsed = timed_test_mail(admin_client, smtp_post(smtp_starttls))
    assert "Test mail failed" in body
    assert "time limit of 1 seconds" in body
    assert elapsed < UPPER_BOUND
    assert smtp_starttls.messages == []


def test_a_server_that_stalls_after_ehlo_is_stopped_at_the_limit(
    admin_client, smtp_starttls, trust_test_ca, short_limit
):
    smtp_starttls.injections.delays["AUTH"] = 60
    body, elapsed = timed_test_mail(admin_client, smtp_post(smtp_starttls))
    assert "Test mail failed</strong> at “Authenticate”" in body
    assert "limited to 1 seconds (MAILCONFIG_TIMEOUT)" in body
    assert elapsed < UPPER_BOUND


def test_a_server_that_stalls_at_data_is_stopped_at_the_limit(
    admin_client, smtp_starttls, trust_test_ca, short_limit
):
    smtp_starttls.injections.delays["DATA"] = 60
    body, elapsed = timed_test_mail(admin_client, smtp_post(smtp_starttls))
    assert "at “Send message”" in body and "time limit" in body
    assert elapsed < UPPER_BOUND


def test_a_slow_go_ahead_then_a_stall_after_the_message_still_ends_at_the_limit(
    admin_client, smtp_starttls, trust_test_ca, settings
):
    # DATA waits for two replies (354, then the verdict): each gets only the time left,
    # not the time left when DATA began, or the test could last almost twice its limit.
    settings.MAILCONFIG_TIMEOUT = 2.0
    smtp_starttls.injections.delays.update({"DATA-COMMAND": 1.6, "DATA": 60})
    body, elapsed = timed_test_mail(admin_client, smtp_post(smtp_starttls))
    assert "at “Send message”" in body and "time limit" in body
    assert elapsed < 2.9  # the limit and some rendering; without the fix about 3.5 s


def test_normal_sending_is_not_held_to_the_test_mail_limit(
    smtp_starttls, trust_test_ca, short_limit, settings
):
    # Each message has its own, longer limit (MAILCONFIG_SEND_TIMEOUT, default 60 s).
    settings.EMAIL_BACKEND = "sender.backend.EmailBackend"
    store_smtp(smtp_starttls)
    smtp_starttls.injections.delays.update({"AUTH": 0.7, "MAIL": 0.7})
    assert mail.send_mail("S", "B", None, ["bob@example.com"]) == 1
    assert MailServerConfig.load().version == 1


# Test Mail over HTTPS APIs --------------------------------------------------


def test_slow_identity_platform_is_stopped_at_the_limit(admin_client, microsoft_fake, short_limit):
    microsoft_fake.add_app(TENANT, CLIENT_ID, SECRET)
    # Discovery and token each within the timeout, but not both.
    microsoft_fake.delays.update({"discovery": 0.6, "token": 0.6})
    body, elapsed = timed_test_mail(admin_client, graph_post())
    assert "Test mail failed</strong> at “Obtain token”" in body
    assert "time limit of 1 seconds" in body
    assert elapsed < UPPER_BOUND
    assert microsoft_fake.sent == []


def test_graph_that_never_answers_is_stopped_at_the_limit(
    admin_client, microsoft_fake, short_limit
):
    microsoft_fake.add_app(TENANT, CLIENT_ID, SECRET)
    microsoft_fake.delays["graph_send"] = 30
    body, elapsed = timed_test_mail(admin_client, graph_post())
    assert "at “Send message”" in body and "time limit" in body
    assert elapsed < UPPER_BOUND


def test_a_token_answer_that_trickles_is_stopped_at_the_limit(
    admin_client, microsoft_fake, short_limit
):
    microsoft_fake.add_app(TENANT, CLIENT_ID, SECRET)
    # Each byte well within any read timeout; the whole answer would take minutes.
    microsoft_fake.trickle["token"] = 0.05
    body, elapsed = timed_test_mail(admin_client, graph_post())
    assert "Test mail failed</strong> at “Obtain token”" in body
    assert "time limit of 1 seconds" in body
    assert elapsed < UPPER_BOUND
    assert microsoft_fake.sent == []


def test_a_graph_answer_that_trickles_stops_normal_sending_at_the_send_limit(
    microsoft_fake, settings
):
    settings.MAILCONFIG_SEND_TIMEOUT = LIMIT
    microsoft_fake.add_app(TENANT, CLIENT_ID, SECRET)
    microsoft_fake.trickle["graph_send"] = 0.5  # an error body of a few hundred bytes
    microsoft_fake.fail_next("graph_send", 503, {"error": {"code": "x", "message": "y" * 300}})
    started = time.monotonic()
    with (
        pytest.raises(MailConnectionError) as caught,
        time_limit(LIMIT, MESSAGE),
        GraphTransport(graph_config()) as transport,
    ):
        transport.send(message())
    assert caught.value.code == "TIMEOUT"
    assert time.monotonic() - started < UPPER_BOUND


def test_a_retry_after_beyond_the_limit_is_not_waited_for(admin_client, microsoft_fake, settings):
    settings.MAILCONFIG_TIMEOUT = 2.0
    microsoft_fake.add_app(TENANT, CLIENT_ID, SECRET)
    microsoft_fake.delays["token"] = 1.0
    microsoft_fake.fail_next(
        "graph_send",
        429,
        {"error": {"code": "TooManyRequests", "message": "Too many requests"}},
        {"Retry-After": "2"},
    )
    body, elapsed = timed_test_mail(admin_client, graph_post())
    assert "after the test&#x27;s time limit" in body
    assert "throttling" in body
    assert elapsed < 2.0 * 2 + 1
    assert microsoft_fake.sent == []
