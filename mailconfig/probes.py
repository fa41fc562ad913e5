"""The endpoints a machine asks, not a person: ``/healthz``, ``/readyz`` and ``/metrics``.

Load balancers, orchestrators and Prometheus address a server by its own IP address
(a Kubernetes probe sends ``Host: 10.1.2.3:8000``) and often over plain HTTP inside
the network, so these paths are answered by ``ProbeMiddleware``, first in
``MIDDLEWARE``: before ``SecurityMiddleware`` (no HTTPS redirect) and before anything
reads the Host header (no ``ALLOWED_HOSTS`` check). The exemption goes no further:
only these exact paths, only GET and HEAD; the answers never use the Host header, set
no cookie, open no session and name nothing but a state. Every other request still
goes through the whole stack.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"


def health() -> HttpResponse:
    """The process answers: nothing else is checked (no database), so it cannot flap."""
    return _plain("ok", 200)


def readiness() -> HttpResponse:
    """Ready when the database answers and every migration is applied; else 503 naming
    which, in one word ("database" or "migrations")."""
    try:
        executor = MigrationExecutor(connection)  # reads which migrations are applied
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as error:
        # The class only: a driver's message may name the database's host and user.
        logger.warning("Not ready: the database cannot be reached (%s).", type(error).__name__)
        return _plain("database", 503)
    if pending:
        logger.warning("Not ready: %d migration(s) not applied (manage.py migrate).", len(pending))
        return _plain("migrations", 503)
    return _plain("ready", 200)


def _metrics(request: HttpRequest) -> HttpResponse:
    from sender.metrics import metrics_response  # imported on use: the sender's models

    return metrics_response(request)


ANSWERS: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    HEALTH_PATH: lambda request: health(),
    READY_PATH: lambda request: readiness(),
    METRICS_PATH: _metrics,
}


class ProbeMiddleware:
    """Answers ``/healthz``, ``/readyz`` and ``/metrics`` before the rest of the stack.

    First in ``MIDDLEWARE``, so a probe addressed to the pod's IP over plain HTTP is
    neither redirected to HTTPS nor refused for its Host header. Only GET and HEAD of
    the exact paths: anything else falls through to the normal stack.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        answer = ANSWERS.get(request.path_info)
        if answer is None or request.method not in ("GET", "HEAD"):
            return self.get_response(request)
        response = answer(request)
        if request.method == "HEAD":
            response.content = b""
        return response


def _plain(text: str, status: int) -> HttpResponse:
    response = HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")
    _no_store(response)
    return response


def _no_store(response: HttpResponse) -> None:
    # A cache between the probe and the server must never answer for the server.
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
