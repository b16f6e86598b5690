"""gunicorn's sync worker, answering the requests gunicorn itself refuses in problem+json.

A request line over ``limit_request_line`` (a query string of several KB), too many or
too large header fields, a malformed request line: gunicorn refuses these before the
app sees them, with its own HTML page. gunicorn has no setting for that page, so this
worker overrides ``handle_error`` (the one place it is written) for the client errors
and leaves everything else to gunicorn. ``gunicorn.conf.py`` selects it.
"""

from __future__ import annotations

import json
from typing import Any

from gunicorn.http import errors
from gunicorn.util import write_nonblock
from gunicorn.workers.sync import SyncWorker

from config.contract import PROBLEM_CONTENT_TYPE, problem

# gunicorn's own statuses for the refusals it makes (gunicorn.workers.base.handle_error).
_STATUS: list[tuple[type[Exception], int, str, str]] = [
    (errors.LimitRequestLine, 414, "URI Too Long",
     "the request line is longer than the server accepts"),
    (errors.LimitRequestHeaders, 431, "Request Header Fields Too Large",
     "the request header fields are too many or too large"),
    (errors.ForbiddenProxyRequest, 403, "Forbidden", "the request is forbidden"),
    (errors.UnsupportedTransferCoding, 501, "Not Implemented",
     "the transfer coding is not supported"),
    (errors.ExpectationFailed, 417, "Expectation Failed", "the expectation is not supported"),
]


def refusal(exc: Exception) -> tuple[int, str, str] | None:
    """Status, reason and detail for a request gunicorn refuses; None for anything else."""
    if isinstance(exc, errors.ConfigurationProblem | errors.InvalidResponseHeader |
                  errors.InvalidResponseHeaderName):
        return None  # the server's fault, not the client's: gunicorn answers 500
    for kind, status, reason, detail in _STATUS:
        if isinstance(exc, kind):
            return status, reason, detail
    if isinstance(exc, errors.ParseException):
        return 400, "Bad Request", "the request is not valid HTTP/1.1"
    return None


def refusal_bytes(status: int, reason: str, detail: str) -> bytes:
    """The whole HTTP answer: headers and an RFC 9457 body, connection closed."""
    body = json.dumps(problem(status, detail)).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {PROBLEM_CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


class ProblemSyncWorker(SyncWorker):
    """The sync worker, with JSON refusals."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: Exception) -> None:
        found = refusal(exc)
        if found is None:
            super().handle_error(req, client, addr, exc)
            return
        status, reason, detail = found
        # The request line may hold a tip reference: log the kind, never the content.
        self.log.warning("refused a request: %s %s", status, type(exc).__name__)
        try:
            write_nonblock(client, refusal_bytes(status, reason, detail))
        except OSError:
            self.log.debug("failed to send the refusal")
