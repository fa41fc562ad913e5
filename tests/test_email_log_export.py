"""The Email Log's CSV export: the log as filtered, metadata only, streamed, audited, safe in spreadsheets."""

import csv
import io
from collections.abc import Iterator
from typing import cast

import pytest
from django.contrib.auth import get_user_model
from django.http import StreamingHttpResponse

from sender.models import Connection, OutboxMessage, Status
from settings_app.email_log_export import EXPORT_ACTION, neutralised
from settings_app.models import AuditEntry
from tests.factories import user_with_permission
from tests.log_rows import LOG_URL, logged_message

pytestmark = pytest.mark.django_db

EXPORT_URL = LOG_URL + "export.csv"
CANARY = "body-canary-7f3a9c"


def exported(client, **filters) -> list[list[str]]:
    response = client.get(EXPORT_URL, filters)
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="email-log-')
    text = b"".join(cast(Iterator[bytes], response.streaming_content)).decode("utf-8-sig")
    assert CANARY not in text
    return list(csv.reader(io.StringIO(text)))


def test_one_row_per_message_with_its_metadata_and_never_its_body(admin_client):
    logged_message(
        status=Status.FAILED,
        to="ops@example.com, cto@example.com",
        subject="Disk full",
        cc_count=2,
        bcc_count=1,
        attempts=3,
        connection=Connection.BACKUP,
        message_id="<m1@example.com>",
        last_error="The server refused the login.",
        last_error_hint="Check the password.",
        keep_body=True,
    )
    for number in range(3):
        logged_message(subject=f"Report {number}", keep_body=True)
    for row in OutboxMessage.objects.all():  # a canary in every stored body
        row.body = row.body.replace("Hello.", CANARY)
        row.save(update_fields=["body"])
    rows = exported(admin_client)
    header, *messages = rows
    assert header[2:] == [
        "Status", "Attempts", "Connection", "From", "To", "Cc count", "Bcc count",
        "Subject", "Message-ID", "Last error", "Hint",
    ]  # fmt: skip
    assert header[0].startswith("Time queued (") and header[1].startswith("Sent at (")
    assert len(messages) == 4
    failed = next(row for row in messages if row[2] == "Failed")
    assert failed[3:] == [
        "3", "Backup", "app@example.com", "ops@example.com, cto@example.com", "2", "1",
        "Disk full", "<m1@example.com>", "The server refused the login.", "Check the password.",
    ]  # fmt: skip


def test_the_export_is_the_log_as_filtered(admin_client):
    logged_message(status=Status.FAILED, to="a@bounce.example", subject="one")
    logged_message(status=Status.FAILED, to="b@example.com", subject="two")
    logged_message(status=Status.SENT, to="c@bounce.example", subject="three")
    rows = exported(admin_client, status="failed", domain="bounce.example")
    assert [row[9] for row in rows[1:]] == ["one"]


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_cells_a_spreadsheet_would_run_are_neutralised(admin_client, start):
    logged_message(subject=f'{start}HYPERLINK("http://evil.example")', to=f"{start}x@example.com")
    [_, row] = exported(admin_client)
    assert row[9] == f'\'{start}HYPERLINK("http://evil.example")'
    assert row[6].startswith("'")
    assert neutralised("Weekly report") == "Weekly report"


def test_an_export_is_audited_like_a_resend(admin_client):
    logged_message(status=Status.FAILED)
    logged_message(status=Status.SENT)
    exported(admin_client, status="failed")
    entry = AuditEntry.objects.get(action=EXPORT_ACTION)
    assert entry.username == "admin"
    assert entry.changed_fields == ["Email Log, 1 message, filters: status=failed"]


def test_anonymous_users_go_to_login(client):
    response = client.get(EXPORT_URL)
    assert response.status_code == 302 and response.url.startswith("/accounts/login/")


def test_users_without_the_permission_get_403(client):
    client.force_login(get_user_model().objects.create_user("viewer", password="pass-12345"))
    assert client.get(EXPORT_URL).status_code == 403
    assert not AuditEntry.objects.filter(action=EXPORT_ACTION).exists()


def test_the_email_log_permission_allows_the_export(client):
    logged_message()
    client.force_login(user_with_permission())
    assert len(exported(client)) == 2


def test_the_log_links_to_the_export_with_its_filters(admin_client):
    html = admin_client.get(LOG_URL, {"status": "failed", "q": "disk"}).content.decode()
    assert f'href="{EXPORT_URL}?status=failed&amp;q=disk"' in html


def test_a_partly_refused_message_says_so(admin_client):
    logged_message(status=Status.SENT, refused_count=2)
    [_, row] = exported(admin_client)
    assert row[2] == "Sent, 2 recipients refused"
