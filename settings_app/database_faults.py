"""Database faults (read-only, locked, missing file) explained to the admin, not a bare 500.

A failed save is answered by the page itself (its typed values kept); a fault
anywhere else in a request (the sign-in check, loading the page) by this
module's ``server_error``, the project's ``handler500``, which touches no
database itself.
"""

from __future__ import annotations

import sys

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.template import loader
from django.views.decorators.csrf import requires_csrf_token

UNAVAILABLE_STATUS = 503

# (words in the driver's message, what the admin is told): SQLite and PostgreSQL.
KNOWN_FAULTS = [
    (
        ("database is locked", "lock timeout", "could not obtain lock", "deadlock"),
        "The database is locked: another process held it longer than the console waits.",
    ),
    (
        ("readonly database", "read-only", "read only"),
        "The database is read-only (file permissions, a full disk, or a read-only server).",
    ),
    (
        ("unable to open database file",),
        "The database file is missing or cannot be opened; `make run` (manage.py migrate) "
        "creates it.",
    ),
    (
        ("no such table", "does not exist"),
        "The database is not set up: run `manage.py migrate`.",
    ),
    (
        ("connection refused", "could not connect", "server closed the connection", "timeout"),
        "The database server cannot be reached.",
    ),
]


def describe_database_error(error: DatabaseError) -> str:
    """One line saying why the database failed, in words an admin can act on."""
    text = str(error).lower()
    for words, description in KNOWN_FAULTS:
        if any(word in text for word in words):
            return description
    first_line = (str(error).strip().splitlines() or [""])[0][:200]
    return f"The database refused the request ({type(error).__name__}: {first_line})."


@requires_csrf_token
def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a database fault gets its own page (503); anything else Django's 500 page."""
    error = sys.exc_info()[1]
    if isinstance(error, DatabaseError):
        page = loader.get_template("database_error.html").render(
            {"reason": describe_database_error(error), "saving": request.method == "POST"}
        )
        return HttpResponse(page, status=UNAVAILABLE_STATUS)
    return HttpResponse(loader.get_template("500.html").render(), status=500)
