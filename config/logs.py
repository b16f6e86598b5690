"""Log lines: plain text, or one JSON object per line (``LOG_FORMAT=json``); request ids.

A JSON line holds ``time``, ``level``, ``logger``, ``message`` and, when there is one,
``request_id`` (a web request) or ``job_id`` (a worker's job), and ``exc_info``. Nothing
else: a record's extra attributes are dropped, so whatever a library attaches to a
record cannot carry personal data into the log. What the messages say is kept free of
personal data where they are written (tests/config/test_no_pii_in_logs.py).

Every request gets a random id of our own, logged and sent back as ``X-Request-Id``,
so a person reporting a failure can name the lines. An id sent by the client is not
taken: it could carry anything, a phone number among others, into the log.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import IO, Any

from flask import Flask, Response, g, has_request_context
from pythonjsonlogger.json import JsonFormatter

from config.settings import Settings

REQUEST_ID_HEADER = "X-Request-Id"
HANDLER_NAME = "hotline"  # the root handler we own (gunicorn.conf.py names its own so)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class RequestIdFilter(logging.Filter):
    """Stamps the current request's id on every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id") if has_request_context() else None
        return True


class JsonLineFormatter(JsonFormatter):
    """One JSON object per record, with our fields only (never a record's extras)."""

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = datetime.fromtimestamp(record.created, UTC).isoformat(
            timespec="milliseconds"
        )
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.message  # a dict logged as the message is dropped
        for key in ("request_id", "job_id"):
            value = getattr(record, key, None)
            if value and value != "-":
                log_data[key] = value
        for key in ("exc_info", "stack_info"):
            if message_dict.get(key):
                log_data[key] = message_dict[key]


def log_formatter(settings: Settings, text_format: str = TEXT_FORMAT) -> logging.Formatter:
    """The formatter ``LOG_FORMAT`` asks for (the worker passes its text format)."""
    if settings.log_format == "json":
        return JsonLineFormatter()
    return logging.Formatter(text_format)


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> logging.Handler | None:
    """Give the root logger our handler (stderr unless ``stream``), in ``LOG_FORMAT``.

    Logging already set up by someone else (a test runner) is left alone, as
    ``logging.basicConfig`` would; gunicorn's ``logconfig_dict`` (gunicorn.conf.py, with
    ``LOG_FORMAT=json``) names its root handler as ours, so it is taken over here.
    Returns our handler, or None when it left things alone.
    """
    root = logging.getLogger()
    handler = next((h for h in root.handlers if h.get_name() == HANDLER_NAME), None)
    if handler is None:
        if root.handlers and stream is None:
            return None
        handler = logging.StreamHandler(stream)
        handler.set_name(HANDLER_NAME)
        root.addHandler(handler)
    root.setLevel(settings.log_level)
    handler.setFormatter(log_formatter(settings))
    if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
        handler.addFilter(RequestIdFilter())
    return handler


def init_app(app: Flask, settings: Settings) -> None:
    """Logging as configured, and a request id on every request and answer."""
    configure_logging(settings)

    @app.before_request
    def _new_request_id() -> None:
        g.request_id = secrets.token_hex(8)

    @app.after_request
    def _send_request_id(response: Response) -> Response:
        if "request_id" in g:
            response.headers[REQUEST_ID_HEADER] = g.request_id
        return response
