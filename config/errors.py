"""One place that turns errors into answers: JSON under /api and /twilio, pages elsewhere.

Never a stack trace; domain errors keep their field so clients can point at it.
"""

from __future__ import annotations

import logging
from typing import Any

from apiflask import APIFlask
from apiflask.exceptions import HTTPError
from flask import render_template, request
from markupsafe import escape
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from workflows.errors import DomainError

log = logging.getLogger(__name__)

# Error pages speak the person's language (a tipster on a Spanish page, a browser asking
# for Spanish) and always show the way back.
PAGE_WORDS = {
    "en": {
        "titles": {
            400: "Bad request", 403: "Not allowed", 404: "Not found", 405: "Not allowed",
            409: "Changed meanwhile", 413: "Too large", 422: "Check the form",
            429: "Too many requests", 500: "Something went wrong",
        },
        "default": "Error",
        "status": "Error code",
        "back": "Back to the start page",
    },
    "es": {
        "titles": {
            400: "Solicitud incorrecta", 403: "No permitido", 404: "No encontrado",
            405: "No permitido", 409: "Cambió mientras tanto", 413: "Demasiado grande",
            422: "Revise el formulario", 429: "Demasiados intentos",
            500: "Algo salió mal",
        },
        "default": "Error",
        "status": "Código de error",
        "back": "Volver a la página de inicio",
    },
}


def page_language() -> str:
    """The person's language: the page's ``lang`` if given, else what the browser asks."""
    asked = (request.values.get("lang") or "")[:5].lower()
    if asked in PAGE_WORDS:
        return asked
    return request.accept_languages.best_match(list(PAGE_WORDS), default="en") or "en"

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "field": {"type": ["string", "null"]},
        "detail": {},
    },
    "required": ["error"],
}


def wants_json() -> bool:
    """API and webhook callers get JSON; people get a page."""
    path = request.path
    return path.startswith(("/api/", "/twilio/", "/healthz", "/readyz")) or (
        request.accept_mimetypes.best == "application/json"
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


def error_answer(
    status: int, message: str, field: str | None = None, detail: Any = None, headers: Any = None
) -> Any:
    """The answer for an error, in the caller's format."""
    if wants_json():
        body: dict[str, Any] = {"error": message, "field": field}
        if detail:
            body["detail"] = detail
        return body, status, headers or {}
    lang = page_language()
    words = PAGE_WORDS[lang]
    title = words["titles"].get(status, words["default"])  # type: ignore[attr-defined]
    back = "/start" if request.cookies.get("hotline_session") else f"/?lang={lang}"
    try:
        html = render_template(
            "errors/error.html", status=status, title=title, message=message, words=words,
            back=back, lang=lang,
        )
    except Exception:  # noqa: BLE001 - the page itself failed (database down): plain words
        log.warning("error page could not be rendered; answering plainly")
        html = (
            f"<!doctype html><title>{status}</title>"
            f"<h1>{escape(title)}</h1><p>{escape(message)}</p>"
        )
    return html, status, {**(headers or {}), "Content-Type": "text/html; charset=utf-8"}


def _document_body_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """Every operation that takes a body can answer 400 (not JSON) and 413 (over 1 MB)."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPError"}}}
    for path_item in spec.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "requestBody" not in operation:
                continue
            responses = operation.setdefault("responses", {})
            responses.setdefault("400", {"description": "The body is not JSON", "content": error})
            responses.setdefault("413", {"description": "The body is over 1 MB", "content": error})
    return spec


def init_app(app: APIFlask) -> None:
    app.config["VALIDATION_ERROR_SCHEMA"] = ERROR_SCHEMA
    app.config["HTTP_ERROR_SCHEMA"] = ERROR_SCHEMA
    app.spec_processor(_document_body_errors)

    @app.error_processor
    def _process(error: HTTPError) -> Any:
        if error.status_code == 422 or (error.status_code == 400 and error.detail):
            field, text = _first_field(error.detail)
            message = f"{field}: {text}" if field and text else (text or error.message)
            return error_answer(error.status_code, message, field, error.detail, error.headers)
        return error_answer(error.status_code, error.message or "error", None, None, error.headers)

    @app.errorhandler(DomainError)
    def _domain(error: DomainError) -> Any:
        return error_answer(error.status, error.message, error.field, error.extra or None)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Any:
        messages = (getattr(error, "data", None) or {}).get("messages")
        if error.code == 400 and isinstance(messages, dict) and "json" in messages:
            # webargs' unparsable body: say so, not werkzeug's stock "could not understand".
            return error_answer(400, "the request body is not valid JSON", None, messages)
        return error_answer(error.code or 500, error.description or error.name)

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
