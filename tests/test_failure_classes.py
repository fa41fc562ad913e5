"""What a failure means for retries, failover and incidents is its type's, set when it
is built: every known provider answer is classified here, and no wording changes it."""

from __future__ import annotations

import dataclasses
import socket

import pytest

from sender.errors import GrantInvalid, GrantMissing, MailError, SenderRefused
from sender.google_identity import GOOGLE_IDENTITY_FAILURES, google_error
from sender.known_failures import KnownFailure
from sender.microsoft_identity import MICROSOFT_IDENTITY_FAILURES, microsoft_error
from sender.network_errors import identity_platform_unavailable, network_error
from sender.smtp_replies import SMTP_REPLIES, smtp_reply_error
from sender.transports.gmail import GMAIL_FAILURES
from sender.transports.graph import GRAPH_FAILURES

TABLES = {
    "SMTP": SMTP_REPLIES,
    "Graph": GRAPH_FAILURES,
    "Gmail": GMAIL_FAILURES,
    "Microsoft identity": MICROSOFT_IDENTITY_FAILURES,
    "Google identity": GOOGLE_IDENTITY_FAILURES,
}

# What each row means, by (table, code, text fragment):
# temporary: retried later; message: this message's own failure (no incident);
# account: the account (credentials, permission, grant) was refused: every message fails
#   and every further sign-in repeats the refusal, so sending pauses and alerts go elsewhere;
# connection: every message fails (nothing usable configured), but nothing was refused;
# sender: the From Address was refused after signing in (a message from another may pass).
EXPECTED = {
    ("SMTP", 535, "5.7.139"): "account",
    ("SMTP", 535, "5.7.3"): "account",
    ("SMTP", 535, "5.7.8"): "account",
    ("SMTP", 550, "5.7.30"): "account",
    ("SMTP", 530, ""): "account",
    ("SMTP", 535, ""): "account",
    ("SMTP", 534, ""): "account",
    ("SMTP", range(500, 600), "sendasdenied"): "sender",
    ("SMTP", range(500, 600), "not owned by user"): "sender",
    ("SMTP", range(500, 600), "sender address rejected: not logged in"): "account",
    ("SMTP", 550, "5.7.57"): "account",
    ("SMTP", 550, "send as"): "sender",
    ("SMTP", 550, "5.7.60"): "sender",
    ("SMTP", 554, "5.7.1"): "sender",
    ("SMTP", 553, "5.7.1"): "sender",
    ("SMTP", 421, ""): "temporary",
    ("SMTP", 452, ""): "temporary",
    ("SMTP", 552, ""): "message",
    ("Graph", "ErrorAccessDenied", ""): "account",
    ("Graph", "InvalidAuthenticationToken", ""): "account",
    ("Graph", "ErrorInvalidUser", ""): "connection",
    ("Graph", "ResourceNotFound", ""): "connection",
    ("Graph", "MailboxNotEnabledForRESTAPI", ""): "connection",
    ("Graph", "ErrorSendAsDenied", ""): "sender",
    ("Graph", "ErrorMessageSizeExceeded", ""): "message",
    ("Graph", "ErrorExceededMessageLimit", ""): "temporary",
    ("Graph", 429, ""): "temporary",
    ("Graph", 413, ""): "message",
    ("Gmail", 400, "failedprecondition"): "connection",
    ("Gmail", 400, "invalidargument"): "message",
    ("Gmail", 401, ""): "account",
    ("Gmail", 403, ""): "account",
    ("Gmail", 429, ""): "temporary",
    ("Microsoft identity", "AADSTS7000215", ""): "account",
    ("Microsoft identity", "AADSTS7000222", ""): "account",
    ("Microsoft identity", "AADSTS700027", ""): "account",
    ("Microsoft identity", "AADSTS700024", ""): "account",
    ("Microsoft identity", "AADSTS700016", ""): "connection",
    ("Microsoft identity", "AADSTS90002", ""): "connection",
    ("Microsoft identity", "AADSTS65001", ""): "account",
    ("Microsoft identity", "AADSTS65004", ""): "account",
    ("Microsoft identity", "AADSTS50011", ""): "connection",
    ("Microsoft identity", "AADSTS50126", ""): "account",
    ("Microsoft identity", "AADSTS50076", ""): "account",
    ("Microsoft identity", "AADSTS53003", ""): "account",
    ("Microsoft identity", "AADSTS70011", ""): "connection",
    ("Microsoft identity", "AADSTS70008", ""): "account",
    ("Microsoft identity", "AADSTS700082", ""): "account",
    ("Microsoft identity", "AADSTS50173", ""): "account",
    ("Microsoft identity", "AADSTS500011", ""): "connection",
    ("Microsoft identity", "access_denied", ""): "account",
    ("Microsoft identity", "invalid_grant", ""): "account",
    ("Google identity", "unauthorized_client", ""): "account",
    ("Google identity", "invalid_client", ""): "account",
    ("Google identity", "redirect_uri_mismatch", ""): "connection",
    ("Google identity", "access_denied", ""): "account",
    ("Google identity", "admin_policy_enforced", ""): "account",
    ("Google identity", "invalid_scope", ""): "connection",
    ("Google identity", "invalid_grant", "invalid email or user id"): "connection",
    ("Google identity", "invalid_grant", "invalid jwt signature"): "account",
    ("Google identity", "invalid_grant", ""): "account",
}


def kind(error: MailError) -> str:
    """One word for the error's classification (each property checked for consistency)."""
    if error.transient:
        assert not error.affects_every_message
        return "temporary"
    if error.concerns_message:
        assert not error.affects_every_message and not error.refuses_account
        return "message"
    if error.needs_reauthorization:
        return "reauthorize-refused" if error.refuses_account else "reauthorize"
    if error.refuses_account:
        assert error.affects_every_message
        return "account"
    if error.affects_every_message:
        return "connection"
    return "sender" if isinstance(error, SenderRefused) else "permanent"


ROWS = [(name, row) for name, table in TABLES.items() for row in table]


def row_id(item: tuple[str, KnownFailure]) -> str:
    name, row = item
    return f"{name}:{row.code}:{row.contains}"


def built(row: KnownFailure) -> MailError:
    return row.error_for(step="Send message", code=str(row.code), provider_text="")


def test_every_known_failure_row_has_an_expected_classification():
    keys = [(name, row.code, row.contains) for name, row in ROWS]
    assert sorted(map(repr, keys)) == sorted(map(repr, EXPECTED))


@pytest.mark.parametrize("item", ROWS, ids=[row_id(item) for item in ROWS])
def test_each_known_failure_row_is_classified_by_its_type(item):
    name, row = item
    assert kind(built(row)) == EXPECTED[(name, row.code, row.contains)]


@pytest.mark.parametrize("item", ROWS, ids=[row_id(item) for item in ROWS])
def test_rewording_a_row_changes_nothing_but_its_words(item):
    _, row = item
    reworded = dataclasses.replace(row, message="Reworded.", hint="Other advice.")
    assert kind(built(reworded)) == kind(built(row))


@pytest.mark.parametrize("item", ROWS[: len(SMTP_REPLIES)], ids=row_id)
def test_an_smtp_reply_means_what_its_row_says(item):
    _, row = item
    code = row.code.start if isinstance(row.code, range) else row.code
    error = smtp_reply_error("Authenticate", code, f"{code} {row.contains} whatever")
    assert kind(error) == kind(built(row))


@pytest.mark.parametrize(
    ("code", "step", "expected"),
    [
        (450, "Recipients", "temporary"),
        (550, "Recipients", "message"),
        (451, "Sender", "temporary"),
        (454, "Authenticate", "temporary"),
        (554, "Send message", "permanent"),
    ],
)
def test_an_unknown_smtp_reply_is_temporary_exactly_when_it_is_4xx(code, step, expected):
    error = smtp_reply_error(step, code, "something unusual")
    assert kind(error) == expected
    assert error.transient == (400 <= code < 500)
    assert error.concerns_message == (step == "Recipients")


def test_an_identity_platform_that_is_down_is_temporary_whatever_it_says():
    for error in (
        microsoft_error("temporarily_unavailable", "AADSTS90033 A transient error.", step="x"),
        google_error("server_error", "Try later", step="x"),
        google_error("whatever", step="x", retryable=True),
        identity_platform_unavailable("x", "503", "Microsoft"),
    ):
        assert kind(error) == "temporary"


def test_a_name_that_does_not_exist_is_permanent_and_a_dns_outage_temporary():
    missing = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    outage = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    assert not network_error("Connect", missing, "mail.example", 25, 5).transient
    assert network_error("Connect", outage, "mail.example", 25, 5).transient


def test_a_refused_grant_and_a_missing_one_both_ask_to_authorize_again():
    refused = GrantInvalid("Anything at all.", code="invalid_grant")
    missing = GrantMissing("Any words.", code="NO-GRANT")
    assert kind(refused) == "reauthorize-refused"
    assert kind(missing) == "reauthorize"
    assert refused.affects_every_message and missing.affects_every_message
    # What downstream code once recognised by these words means nothing by itself now.
    assert not MailError("Authorization expired - Reconnect.").needs_reauthorization
