"""The local HTTP(S) servers' common base: quiet about clients that hang up."""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer
from typing import Any


class LocalHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server on 127.0.0.1 whose request threads die with the test.

    A client that gives up (a sender's time limit, a TLS handshake a test refuses)
    closes the connection under a handler: that is the test working, not a server
    fault, so it is not printed as a traceback into the test run's output. Any other
    exception still is.
    """

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # reset, broken pipe, TLS EOF
            return
        super().handle_error(request, client_address)
