"""The Email Log page: one row per message, filters, search, pages, the detail view, access."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.urls import resolve, reverse
from django.utils import timezone
from pytest_django.asserts import assertInHTML

from sender.models import Attempt, Connection, Status
from tests.factories import PAGE_URL, user_with_permission
from tests.log_rows import LOG_URL, attempt, logged_message

pytestmark = pytest.mark.django_db


def rows_of(response) -> list[str]:
    """The subjects of the messages listed, in order."""
    return [row.subject for row in response.context["page"].object_list]


def detail_url(pk: int) -> str:
    return f"{LOG_URL}{pk}/"


# --- Where it is --------------------------------------------------------------------------


def test_the_log_has_the_documented_url():
    assert reverse("settings_app:email_log") == LOG_URL
    assert resolve(LOG_URL).url_name == "email_log"


def test_the_log_is_in_the_navigation_under_general_settings(admin_client):
    body = admin_client.get(PAGE_URL).content.decode()
    general = body.index("General Settings")
    assert body.index(">Mail Server</a>", general) < body.index(f'href="{LOG_URL}"', general)
    assert ">Email Log</a>" in body


def test_the_log_marks_its_navigation_link_active(admin_client):
    body = admin_client.get(LOG_URL).content.decode()
    assertInHTML(f'<a class="nav-link active" href="{LOG_URL}">Email Log</a>', body)


# --- Who may see it -----------------------------------------------------------------------


@pytest.mark.parametrize("path", [LOG_URL, detail_url(1), f"{LOG_URL}1/resend/"])
def test_anonymous_users_go_to_login(client, path):
    for method in (client.get, client.post):
        response = method(path)
        assert response.status_code == 302
        assert response.url.startswith("/accounts/login/?next=")


@pytest.mark.parametrize("path", [LOG_URL, detail_url(1), f"{LOG_URL}1/resend/"])
def test_users_without_the_permission_get_403(client, path):
    logged_message()
    client.force_login(get_user_model().objects.create_user("viewer", password="pass-12345"))
    for method in (client.get, client.post):
        assert method(path, {"action": "copy", "confirmed": "yes"}).status_code == 403


def test_the_settings_permission_opens_the_log(client):
    row = logged_message()
    client.force_login(user_with_permission())
    assert client.get(LOG_URL).status_code == 200
    assert client.get(detail_url(row.pk)).status_code == 200


# --- One row per message ------------------------------------------------------------------


def test_each_message_is_one_row_with_its_delivery_facts(admin_client):
    queued = timezone.now() - timedelta(minutes=5)
    logged_message(
        status=Status.FAILED,
        queued_at=queued,
        to="ops@example.com, cto@example.com",
        subject="Disk almost full",
        cc_count=2,
        bcc_count=1,
        attempts=3,
        connection=Connection.BACKUP,
        last_error="535 5.7.139 Authentication unsuccessful",
        last_error_code="535 5.7.139",
        last_error_hint="SMTP AUTH is disabled for the mailbox: enable it, or use API mode.",
    )
    response = admin_client.get(LOG_URL)
    body = response.content.decode()
    for header in ("Time queued", "To", "Subject", "Status", "Attempts", "Connection", "Sent at"):
        assert f"<th>{header}</th>" in body or f'<th class="text-end">{header}</th>' in body
    assert timezone.localtime(queued).strftime("%Y-%m-%d %H:%M:%S") in body
    assert "<div>ops@example.com</div><div>cto@example.com</div>" in body
    assert "+2 Cc" in body and "+1 Bcc" in body
    assert "Disk almost full" in body
    assert ">Failed</span>" in body
    assertInHTML('<td class="text-end" data-label="Attempts">3</td>', body)
    assert ">Backup</td>" in body
    assert "535 5.7.139 Authentication unsuccessful" in body
    assert "SMTP AUTH is disabled for the mailbox" in body


def test_a_long_recipient_list_shows_the_first_three_and_a_count(admin_client):
    logged_message(to=", ".join(f"user{number}@example.com" for number in range(7)))
    body = admin_client.get(LOG_URL).content.decode()
    assert "<div>user2@example.com</div>" in body and "user3@example.com" not in body
    assert "+4 more" in body


def test_a_sent_message_shows_when_it_was_sent(admin_client):
    row = logged_message(status=Status.SENT)
    body = admin_client.get(LOG_URL).content.decode()
    assert timezone.localtime(row.sent_at).strftime("%Y-%m-%d %H:%M:%S") in body
    assert ">Sent</span>" in body


def test_every_status_has_its_label(admin_client):
    for status in Status:
        logged_message(status=status, subject=f"about {status.value}")
    body = admin_client.get(LOG_URL).content.decode()
    for label in ("Queued", "Sending", "Sent", "Retrying", "Failed"):
        assert f">{label}</span>" in body


def test_newest_messages_come_first(admin_client):
    now = timezone.now()
    logged_message(subject="older", queued_at=now - timedelta(hours=2))
    logged_message(subject="newer", queued_at=now - timedelta(hours=1))
    assert rows_of(admin_client.get(LOG_URL)) == ["newer", "older"]


def test_an_empty_log_says_so(admin_client):
    body = admin_client.get(LOG_URL).content.decode()
    assert "No mail has been queued in the last 30 days." in body


def test_subjects_and_addresses_are_escaped(admin_client):
    logged_message(subject="<script>alert(1)</script>", to="<b>x@example.com</b>")
    body = admin_client.get(LOG_URL).content.decode()
    assert "<script>alert(1)" not in body and "&lt;script&gt;" in body
    assert "<b>x@" not in body


# --- Filters, search, pages ---------------------------------------------------------------


def test_filter_by_status(admin_client):
    logged_message(status=Status.SENT, subject="went")
    logged_message(status=Status.FAILED, subject="bounced")
    assert rows_of(admin_client.get(LOG_URL, {"status": "failed"})) == ["bounced"]
    assert rows_of(admin_client.get(LOG_URL, {"status": "sent"})) == ["went"]


def test_the_waiting_filter_shows_messages_still_on_their_way(admin_client):
    for status in Status:
        logged_message(status=status, subject=status.value)
    assert sorted(rows_of(admin_client.get(LOG_URL, {"status": "waiting"}))) == [
        "paused",
        "queued",
        "retrying",
        "sending",
    ]


def test_filter_by_period_of_queueing(admin_client):
    now = timezone.now()
    logged_message(subject="this hour", queued_at=now - timedelta(minutes=10))
    logged_message(subject="yesterday", queued_at=now - timedelta(hours=20))
    logged_message(subject="last week", queued_at=now - timedelta(days=5))
    assert rows_of(admin_client.get(LOG_URL, {"period": "1h"})) == ["this hour"]
    assert rows_of(admin_client.get(LOG_URL, {"period": "24h"})) == ["this hour", "yesterday"]
    assert len(rows_of(admin_client.get(LOG_URL, {"period": "7d"}))) == 3


def test_search_by_recipient(admin_client):
    logged_message(to="alice@example.com", subject="one")
    logged_message(to="bob@example.com, carol@Example.com", subject="two")
    assert rows_of(admin_client.get(LOG_URL, {"q": "CAROL@example"})) == ["two"]


def test_search_by_subject(admin_client):
    logged_message(subject="Backup finished")
    logged_message(subject="Disk almost full")
    assert rows_of(admin_client.get(LOG_URL, {"q": "disk"})) == ["Disk almost full"]


def test_search_by_message_id(admin_client):
    logged_message(subject="wanted", message_id="<abc.123@mail.example.com>")
    logged_message(subject="other", message_id="<def.456@mail.example.com>")
    assert rows_of(admin_client.get(LOG_URL, {"q": "abc.123"})) == ["wanted"]


def test_filters_combine(admin_client):
    logged_message(status=Status.FAILED, subject="Disk full on db1")
    logged_message(status=Status.SENT, subject="Disk full on db2")
    logged_message(status=Status.FAILED, subject="Backup failed")
    response = admin_client.get(LOG_URL, {"status": "failed", "q": "disk", "period": "24h"})
    assert rows_of(response) == ["Disk full on db1"]
    assert "matching the filters" in response.content.decode()


def test_no_match_says_so_and_offers_the_whole_log(admin_client):
    logged_message(subject="something")
    body = admin_client.get(LOG_URL, {"q": "nothing like it"}).content.decode()
    assert "No message matches these filters." in body


def test_a_bad_page_number_shows_the_first_page(admin_client):
    logged_message(subject="kept")
    response = admin_client.get(LOG_URL, {"page": "x"})
    assert response.status_code == 200
    assert rows_of(response) == ["kept"]


@pytest.mark.parametrize(
    ("query", "field"),
    [({"status": "bogus"}, "status"), ({"period": "1y"}, "period"), ({"q": "x" * 201}, "q")],
)
def test_an_invalid_filter_shows_its_error_and_no_messages(admin_client, query, field):
    logged_message(subject="not an answer to the search")
    response = admin_client.get(LOG_URL, query)
    body = response.content.decode()
    assert response.status_code == 200
    assert rows_of(response) == []
    assert response.context["filters"].errors[field]
    assert 'data-testid="filter-error"' in body and "is-invalid" in body
    assert "Nothing is listed: correct the filter marked above" in body


def test_the_log_pages_by_50_newest_first(admin_client):
    start = timezone.now() - timedelta(hours=2)
    for number in range(120):
        logged_message(subject=f"m{number:03}", queued_at=start + timedelta(seconds=number))
    first = admin_client.get(LOG_URL)
    assert len(rows_of(first)) == 50 and rows_of(first)[0] == "m119"
    assert "1\u201350 of 120 messages" in first.content.decode()  # en dash
    last = admin_client.get(LOG_URL, {"page": "3"})
    assert rows_of(last)[-1] == "m000" and len(rows_of(last)) == 20
    # A page past the end shows the last page rather than an error.
    assert rows_of(admin_client.get(LOG_URL, {"page": "99"})) == rows_of(last)


def test_page_links_keep_the_filters(admin_client):
    for number in range(60):
        logged_message(status=Status.FAILED, subject=f"disk {number}")
    logged_message(status=Status.SENT, subject="disk sent")
    response = admin_client.get(LOG_URL, {"status": "failed", "q": "disk"})
    body = response.content.decode()
    assert 'href="?status=failed&amp;q=disk&amp;page=2"' in body
    second = admin_client.get(LOG_URL, {"status": "failed", "q": "disk", "page": "2"})
    assert len(rows_of(second)) == 10


# --- The detail view ----------------------------------------------------------------------


def test_the_detail_view_shows_every_attempt(admin_client):
    row = logged_message(status=Status.SENT, subject="Report", attempts=2)
    start = timezone.now() - timedelta(minutes=3)
    attempt(
        row,
        started_at=start,
        duration_ms=15000,
        transport="SMTP (XOAUTH2)",
        outcome=Attempt.Outcome.TRANSIENT,
        reply="421 4.7.0 Try again later",
        error="The server is busy.",
        error_code="421 4.7.0",
        hint="Nothing to do: it is tried again automatically.",
    )
    attempt(
        row,
        started_at=start + timedelta(minutes=1),
        duration_ms=380,
        transport="Microsoft Graph",
        connection=Connection.BACKUP,
        reply="202 Accepted",
    )
    response = admin_client.get(detail_url(row.pk))
    body = response.content.decode()
    assert body.count('data-testid="attempt"') == 2
    assert timezone.localtime(start).strftime("%Y-%m-%d %H:%M:%S") in body
    assert "SMTP (XOAUTH2)" in body and "Microsoft Graph" in body
    assert "421 4.7.0 Try again later" in body and "202 Accepted" in body
    assert "The server is busy." in body and "tried again automatically" in body
    assert "15.0 s" in body and "380 ms" in body
    assert "Temporary failure" in body and ">Backup</td>" in body


def test_the_detail_view_shows_the_message_facts(admin_client):
    row = logged_message(
        status=Status.RETRYING,
        subject="Alert",
        message_id="<alert.1@example.com>",
        cc_count=1,
        next_attempt_at=timezone.now() + timedelta(minutes=4),
        last_error="Connection refused",
        last_error_hint="Check the server name and port.",
    )
    body = admin_client.get(detail_url(row.pk)).content.decode()
    assert "&lt;alert.1@example.com&gt;" in body
    assert "Next attempt" in body
    assert "1 in Cc <" in body and "in Bcc" not in body
    assert "Connection refused" in body and "Check the server name and port." in body


def test_a_copy_links_to_its_original_and_back(admin_client):
    original = logged_message(status=Status.FAILED, subject="first")
    copy = logged_message(status=Status.QUEUED, subject="first", resend_of=original)
    assert detail_url(original.pk) in admin_client.get(detail_url(copy.pk)).content.decode()
    assert detail_url(copy.pk) in admin_client.get(detail_url(original.pk)).content.decode()


def test_a_missing_message_is_a_404_page_not_an_error(admin_client):
    response = admin_client.get(detail_url(999999))
    assert response.status_code == 404
    assert "Message not found" in response.content.decode()


def test_the_log_never_decrypts_message_bodies(admin_client):
    """A body written under a key since removed must not stop the log from showing."""
    row = logged_message(status=Status.FAILED, subject="old key")
    with connection.cursor() as cursor:
        table = row._meta.db_table
        cursor.execute(f"UPDATE {table} SET body = %s WHERE id = %s", ["gAAAAAnot-ours", row.pk])  # noqa: S608
    assert admin_client.get(LOG_URL).status_code == 200
    response = admin_client.get(detail_url(row.pk))
    assert response.status_code == 200
    assert "old key" in response.content.decode()


# --- The settings page's summary ----------------------------------------------------------


def test_the_settings_page_summarises_delivery_and_links_to_the_log(admin_client):
    now = timezone.now()
    logged_message(status=Status.QUEUED)
    logged_message(status=Status.RETRYING)
    logged_message(status=Status.SENT)
    logged_message(status=Status.SENT)
    logged_message(status=Status.SENT, queued_at=now - timedelta(hours=30))  # too old
    logged_message(status=Status.FAILED)
    body = admin_client.get(PAGE_URL).content.decode()
    start = body.index('data-testid="delivery-summary"')
    line = body[start : body.index("</p>", start)]
    assert f'href="{LOG_URL}?status=waiting">2 queued now</a>' in line
    assert f'href="{LOG_URL}?status=sent&amp;period=24h">2 sent</a>' in line
    assert (
        f'href="{LOG_URL}?status=failed&amp;period=24h" class="link-danger fw-semibold">1 failed</a>'
        in line
    )
    assert "in the last 24 h" in line


def test_the_summary_figures_match_the_log_filtered_the_same_way(admin_client):
    now = timezone.now()
    logged_message(status=Status.FAILED, queued_at=now - timedelta(hours=1))
    logged_message(status=Status.FAILED, queued_at=now - timedelta(hours=25))
    failed = admin_client.get(PAGE_URL).context["delivery"].failed_24h
    listed = admin_client.get(LOG_URL, {"status": "failed", "period": "24h"})
    assert failed == len(rows_of(listed)) == 1
