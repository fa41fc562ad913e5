"""The Email Log as a CSV file, filtered as on the page: metadata only, streamed, audited.

Only the columns below are read from the database (never the encrypted body, never a
header beyond them), a chunk of rows at a time, so a log of 100,000 messages does not
build up in memory. A cell that a spreadsheet would run as a formula is neutralised.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime

from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from mailconfig.client_address import client_ip
from mailconfig.signed_in import SignedInRequest
from sender.models import OutboxMessage

from .email_log import LogFilterForm
from .models import AuditEntry, Connection, MailServerConfig

EXPORT_ACTION = "Exported the Email Log as CSV"
CHUNK_SIZE = 2000
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = (
    ("queued_at", "Time queued"),
    ("sent_at", "Sent at"),
    ("status", "Status"),
    ("attempts", "Attempts"),
    ("connection", "Connection"),
    ("from_address", "From"),
    ("to", "To"),
    ("cc_count", "Cc count"),
    ("bcc_count", "Bcc count"),
    ("subject", "Subject"),
    ("message_id", "Message-ID"),
    ("last_error", "Last error"),
    ("last_error_hint", "Hint"),
)

FIELDS = (*(name for name, _ in COLUMNS), "refused_count")  # read, for the status's words


class _Lines:
    """A file-like object whose write() hands back the line csv.writer wrote."""

    def write(self, line: str) -> str:
        return line


def neutralised(value: object) -> str:
    """A cell as text, with a leading apostrophe if a spreadsheet would take it for a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _local(moment: datetime | None) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def csv_lines(rows: Iterator[tuple]) -> Iterator[str]:
    """The CSV text, line by line: a byte-order mark (for spreadsheets), the header, the rows."""
    writer = csv.writer(_Lines())
    zone = timezone.get_current_timezone_name()
    header = [label for _, label in COLUMNS]
    header[0], header[1] = f"Time queued ({zone})", f"Sent at ({zone})"
    yield "\ufeff" + writer.writerow(header)
    connections = dict(Connection.choices)
    for row in rows:
        values = dict(zip(FIELDS, row, strict=True))
        values["queued_at"] = _local(values["queued_at"])
        values["sent_at"] = _local(values["sent_at"])
        # As the log says it: "Sent, 2 recipients refused".
        message = OutboxMessage(status=values["status"], refused_count=values["refused_count"])
        values["status"] = message.status_text
        values["connection"] = connections.get(values["connection"], values["connection"])
        yield writer.writerow([neutralised(values[name]) for name, _ in COLUMNS])


@require_GET
def email_log_export(request: SignedInRequest) -> StreamingHttpResponse:
    """The messages the log shows with these filters, newest first, as a CSV download."""
    now = timezone.now()
    rows = LogFilterForm(request.GET).apply(OutboxMessage.objects.all(), now)
    count = rows.count()
    AuditEntry.objects.create(
        user=request.user,
        username=request.user.get_username(),
        source_ip=client_ip(request),
        version=MailServerConfig.load().version,
        action=EXPORT_ACTION,
        changed_fields=[
            f"Email Log, {count} message{'s' if count != 1 else ''}, {_described(request)}"
        ],
    )
    values = rows.values_list(*FIELDS).iterator(chunk_size=CHUNK_SIZE)
    response = StreamingHttpResponse(csv_lines(values), content_type="text/csv; charset=utf-8")
    name = f"email-log-{timezone.localtime(now):%Y%m%d-%H%M}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _described(request: HttpRequest) -> str:
    filters = [
        f"{name}={value[:100]}"
        for name, value in request.GET.items()
        if value and name not in ("page", "summary")
    ]
    return "filters: " + ", ".join(filters) if filters else "no filters"
