"""Known failures: one row shape for every provider's table, and one lookup."""

from __future__ import annotations

import pytest

from oauth.consent import GoogleConsent
from sender.errors import (
    AuthenticationError,
    AuthorizationError,
    MailConnectionError,
    ProviderError,
    RateLimited,
)
from sender.google_identity import GOOGLE_IDENTITY_FAILURES
from sender.known_failures import KnownFailure, explain, find
from sender.microsoft_identity import MICROSOFT_IDENTITY_FAILURES
from sender.smtp_replies import SMTP_REPLIES
from sender.transports.gmail import GMAIL_FAILURES
from sender.transports.graph import GRAPH_FAILURES
from settings_app.values import MailSettings
from tests.servers.smtp_server import refused_port

TABLE = (
    KnownFailure(535, AuthorizationError, "SMTP AUTH is off.", "Turn it on.", contains="5.7.139"),
    KnownFailure(535, AuthenticationError, "Rejected.", "Check the password."),
    KnownFailure(range(500, 600), ProviderError, "Refused.", "Ask {who}."),
    KnownFailure("ErrorAccessDenied", AuthorizationError, "Denied.", "Grant Mail.Send."),
    KnownFailure(429, RateLimited, "Throttled.", "Wait."),
)


def lookup(*codes, text=""):
    return find(TABLE, *codes, text=text)


def explained(*codes, context=None):
    return explain(
        TABLE,
        *codes,
        step="Authenticate",
        code="X",
        provider_text="the text",
        unknown="The server answered X.",
        context=context,
    )


@pytest.mark.parametrize(
    "table",
    [
        SMTP_REPLIES,
        GRAPH_FAILURES,
        GMAIL_FAILURES,
        MICROSOFT_IDENTITY_FAILURES,
        GOOGLE_IDENTITY_FAILURES,
    ],
    ids=["SMTP", "Graph", "Gmail", "Microsoft identity", "Google identity"],
)
def test_every_providers_table_is_made_of_known_failures(table):
    assert table and all(isinstance(row, KnownFailure) for row in table)
    assert all(row.message and row.error for row in table)


def test_the_first_matching_row_wins():
    row = lookup(535, text="535 5.7.139 Authentication unsuccessful")
    assert row.message == "SMTP AUTH is off."


def test_a_row_with_no_fragment_matches_any_text():
    assert lookup(535, text="535 go away").message == "Rejected."


def test_a_range_matches_the_codes_within_it():
    assert lookup(554).message == "Refused."
    assert lookup(421) is None


def test_a_code_matches_only_a_code_of_the_same_kind():
    assert lookup("535") is None  # a text code is not the SMTP reply code 535


def test_any_of_several_codes_can_match():
    assert lookup("ErrorAccessDenied", 403).message == "Denied."
    assert lookup("TooManyRequests", 429).message == "Throttled."


def test_the_error_is_the_rows_with_the_callers_step_and_the_providers_code_and_text():
    error = explained(535)
    assert isinstance(error, AuthenticationError)
    assert (error.step, error.code, error.provider_text) == ("Authenticate", "X", "the text")
    assert (error.message, error.hint) == ("Rejected.", "Check the password.")


def test_an_unknown_answer_is_a_provider_error_in_the_providers_words():
    error = explained(250)
    assert type(error) is ProviderError
    assert (error.message, error.provider_text) == ("The server answered X.", "the text")


def test_a_hint_placeholder_is_filled_from_the_context_or_named():
    assert explained(550, context={"who": "the postmaster"}).hint == "Ask the postmaster."
    assert explained(550).hint == "Ask (who)."


def test_a_google_refresh_that_cannot_reach_google_names_host_and_cause(db, settings):
    # The service account and the SMTP consent now share one refresh path; the consent's
    # copy used to answer only "could not be reached", without saying why.
    port = refused_port()
    settings.MAILCONFIG_GOOGLE = {
        **settings.MAILCONFIG_GOOGLE,
        "token_uri": f"https://127.0.0.1:{port}/token",
    }
    config = MailSettings(
        mode="smtp",
        auth="oauth",
        oauth_provider="google",
        google_client_id="client.apps.googleusercontent.com",
        google_client_secret="secret",
    )
    with pytest.raises(MailConnectionError) as caught:
        GoogleConsent(config).refresh("refresh-token")
    assert caught.value.code == "ECONNREFUSED"
    assert f"127.0.0.1:{port}" in caught.value.message
    assert caught.value.step == "Obtain token"
