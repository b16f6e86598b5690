"""One place that turns errors into answers: problem+json under /api and /twilio, pages elsewhere.

Never a stack trace; domain errors keep their field so clients can point at it. Every
header an HTTP error carries (``Allow`` on a 405, ``WWW-Authenticate`` on a 401) is kept;
a 429 says when to come back in the header and the body from one number. The body's
schema and the shared field types are in ``config.contract``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

from apiflask import APIFlask
from apiflask.exceptions import HTTPError
from flask import Response, current_app, render_template, request
from flask_babel import force_locale, gettext, ngettext
from flask_babel import lazy_gettext as _l
from markupsafe import escape
from sqlalchemy.exc import IntegrityError
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException

from config.contract import PROBLEM_CONTENT_TYPE, PROBLEM_SCHEMA, add_links, problem
from workflows.errors import DomainError, TooManyRequests
from workflows.vocabulary import LANGUAGES

log = logging.getLogger(__name__)

# Error pages speak the person's language (a tipster on a Spanish page, a browser asking
# for Spanish) and always show the way back. English msgids; Spanish in translations/.
TITLES = {
    400: _l("Bad request"), 403: _l("Not allowed"), 404: _l("Not found"),
    405: _l("Not allowed"), 409: _l("Changed meanwhile"), 413: _l("Too large"),
    422: _l("Check the form"), 429: _l("Too many requests"), 500: _l("Something went wrong"),
}
# What a page says in a language other than English, in place of the API's English
# message (written for developers: "The requested URL was not found on the server").
PAGE_MESSAGES = {
    400: _l("The request could not be understood. Please go back and try again."),
    403: _l("You are not allowed to do that."),
    404: _l("We could not find that page."),
    405: _l("That cannot be done on this page."),
    409: _l("Something changed meanwhile. Please reload the page and try again."),
    413: _l("What you sent is too large."),
    422: _l("Please check what you entered."),
    429: _l("Too many attempts."),
    500: _l("Something went wrong on our side. Please try again later."),
}
PAGE_WORDS = {
    "default": _l("Error"),
    "status": _l("Error code"),
    "back": _l("Back to the start page"),
}


def page_language() -> str:
    """The person's language: the page's ``lang`` if given, else what the browser asks."""
    asked = (request.values.get("lang") or "")[:5].lower()
    if asked in LANGUAGES:
        return asked
    return request.accept_languages.best_match(list(LANGUAGES), default="en") or "en"


def page_message(status: int, message: str, retry_after: int | None) -> str:
    """The error in the page's locale: a plain sentence per status (the English one is
    for developers), and when to come back, in the same words as ``Retry-After``."""
    text = str(PAGE_MESSAGES[status]) if status in PAGE_MESSAGES else message
    if retry_after is None:
        return text
    if retry_after >= 60 and retry_after % 60 == 0:
        when = ngettext("%(num)d minute", "%(num)d minutes", retry_after // 60)
    else:
        when = ngettext("%(num)d second", "%(num)d seconds", retry_after)
    return f"{text} " + gettext("Try again in %(when)s.", when=when)


PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# Headers the body's own answer sets; everything else an error carries is kept.
_BODY_HEADERS = {"content-type", "content-length"}


def wants_json() -> bool:
    """API and webhook callers get JSON; people get a page."""
    path = request.path
    return path.startswith(("/api/", "/twilio/", "/healthz", "/readyz")) or (
        request.accept_mimetypes.best in ("application/json", PROBLEM_CONTENT_TYPE)
    )


def _first_field(detail: Any) -> tuple[str | None, str | None]:
    """From APIFlask's nested validation detail, the first field and its message."""
    if not isinstance(detail, dict):
        return None, None
    for location in ("json", "query", "form", "headers", "path"):
        fields = detail.get(location)
        if isinstance(fields, dict) and fields:
            name, messages = next(iter(fields.items()))
            while isinstance(messages, dict) and messages:
                sub, messages = next(iter(messages.items()))
                name = name if sub == "_schema" else f"{name}.{sub}"  # the nested object itself
            text = messages[0] if isinstance(messages, list) and messages else str(messages)
            if name == "_schema":
                return None, text
            return str(name), str(text)
    return None, None


def retry_phrase(seconds: int) -> str:
    """``seconds`` as a person reads it, exactly (the header says the same number)."""
    if seconds >= 60 and seconds % 60 == 0:
        minutes = seconds // 60
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def error_answer(
    status: int,
    message: str,
    field: str | None = None,
    *,
    headers: Any = None,
    retry_after: int | None = None,
    extensions: Mapping[str, object] | None = None,
) -> Response:
    """The answer for an error, in the caller's format, with the error's own headers."""
    kept = Headers()
    for name, value in Headers(headers or {}).items():
        if name.lower() not in _BODY_HEADERS:
            kept.add(name, value)
    english = message
    if retry_after is not None:
        kept["Retry-After"] = str(retry_after)
        message = f"{message}; try again in {retry_phrase(retry_after)}"
    if wants_json():
        body = problem(status, message, field, retry_after=retry_after, **(extensions or {}))
        return current_app.response_class(
            json.dumps(body), status, headers=kept, mimetype=PROBLEM_CONTENT_TYPE
        )
    lang = page_language()
    back = "/start" if request.cookies.get("hotline_session") else f"/?lang={lang}"
    with force_locale(lang):
        title = str(TITLES.get(status, PAGE_WORDS["default"]))
        if lang != "en":
            message = page_message(status, english, retry_after)
    try:
        with force_locale(lang):
            html = render_template(
                "errors/error.html", status=status, title=title, message=message,
                words=PAGE_WORDS, back=back, lang=lang,
            )
    except Exception:  # noqa: BLE001 - the page itself failed (database down): plain words
        log.warning("error page could not be rendered; answering plainly")
        html = (
            f"<!doctype html><title>{status}</title>"
            f"<h1>{escape(title)}</h1><p>{escape(message)}</p>"
        )
    return current_app.response_class(html, status, headers=kept, mimetype="text/html")


def _limiter_retry_after() -> int:
    """Seconds until the address limit that refused this request lets one through."""
    limiter = current_app.extensions.get("hotline_limiter")
    limit = limiter.current_limit if limiter is not None else None
    if limit is None:
        return 60
    # reset_at is whole seconds, so the wait may read one over the window; never more
    # than the window itself.
    window = limit.limit.get_expiry()
    return min(window, max(1, math.ceil(limit.reset_at - time.time())))


def _require_json_body() -> Response | None:
    """An operation that takes a JSON body refuses a request without one (the document
    marks every request body ``required``): 400 without a body, 415 with another type."""
    if not request.path.startswith("/api/"):
        return None
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or "body" not in getattr(view, "_spec", {}):
        return None
    if request.is_json:
        return None
    if not request.content_length and not request.headers.get("Transfer-Encoding"):
        return error_answer(400, "a JSON body is required")
    return error_answer(415, "the body must be JSON (Content-Type: application/json)")


def _document_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """Make the document say what the server does about errors and bodies.

    One error schema (``Problem``) as ``application/problem+json`` for every 4xx/5xx;
    every request body ``required``; 400/413/415 where a body is taken; ``Retry-After``
    on every 429.
    """
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas.pop("HTTPError", None)
    schemas.pop("ValidationError", None)
    problem_content = {PROBLEM_CONTENT_TYPE: {"schema": PROBLEM_REF}}
    for path_item in spec.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if "requestBody" in operation:
                operation["requestBody"]["required"] = True
                responses.setdefault("400", {"description": "The body is missing or not JSON"})
                responses.setdefault("413", {"description": "The body is over 1 MB"})
                responses.setdefault("415", {"description": "The body is not application/json"})
            for status, response in responses.items():
                if int(status) >= 400:
                    response["content"] = dict(problem_content)
                if status == "429":
                    response["headers"] = {
                        "Retry-After": {
                            "description": "Seconds to wait; the body's retry_after says the same",
                            "schema": {"type": "integer", "minimum": 1},
                        }
                    }
    add_links(spec)
    return spec


def init_app(app: APIFlask) -> None:
    # operationIds (method_endpoint) name the functions of generated clients.
    app.config["AUTO_OPERATION_ID"] = True
    app.config["VALIDATION_ERROR_SCHEMA"] = PROBLEM_SCHEMA
    app.config["HTTP_ERROR_SCHEMA"] = PROBLEM_SCHEMA
    # APIFlask types the callback as taking ``dict | str``; it only ever passes the dict
    # (spec_object.to_dict(), app.py _get_spec), so ours takes and returns a dict.
    app.spec_processor(_document_errors)  # type: ignore[arg-type]
    app.before_request(_require_json_body)

    @app.error_processor
    def _process(error: HTTPError) -> Any:
        if error.status_code == 422 or (error.status_code == 400 and error.detail):
            field, text = _first_field(error.detail)
            message = f"{field}: {text}" if field and text else (text or error.message or "error")
            return error_answer(
                error.status_code, message, field, headers=error.headers,
                extensions={"errors": error.detail},
            )
        return error_answer(error.status_code, error.message or "error", headers=error.headers)

    @app.errorhandler(TooManyRequests)
    def _too_many(error: TooManyRequests) -> Any:
        return error_answer(429, error.message, error.field, retry_after=error.retry_after)

    @app.errorhandler(DomainError)
    def _domain(error: DomainError) -> Any:
        return error_answer(error.status, error.message, error.field, extensions=error.extra)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Any:
        headers = error.get_headers()  # Allow on a 405, and whatever else it carries
        messages = (getattr(error, "data", None) or {}).get("messages")
        if error.code == 400 and isinstance(messages, dict) and "json" in messages:
            # webargs' unparsable body: say so, not werkzeug's stock "could not understand".
            return error_answer(
                400, "the request body is not valid JSON", headers=headers,
                extensions={"errors": messages},
            )
        if error.code == 429:
            # Flask-Limiter's per-address limit: the window it counts says when to return.
            return error_answer(
                429, error.description or "too many requests", headers=headers,
                retry_after=_limiter_retry_after(),
            )
        return error_answer(error.code or 500, error.description or error.name, headers=headers)

    @app.errorhandler(IntegrityError)
    def _integrity(error: IntegrityError) -> Any:
        # A unique key taken by a concurrent request (a retried webhook, a double submit):
        # the transaction was rolled back, so the caller may reload and retry.
        log.info("integrity conflict on %s %s", request.method, request.path)
        return error_answer(409, "the request conflicts with a change stored meanwhile")

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_answer(500, "internal error; the request was not completed")
