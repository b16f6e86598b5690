"""Typed domain errors; the web layer turns each into one JSON answer or page."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    status = 400

    def __init__(self, message: str, field: str | None = None, **extra: object) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra


class InvalidInput(DomainError):
    """The request is well-formed but its content breaks a rule."""

    status = 422


class NotFound(DomainError):
    """Missing, or not visible to this user (agencies get 404, not 403)."""

    status = 404


class Forbidden(DomainError):
    """The user's role may not do this."""

    status = 403


class Conflict(DomainError):
    """The state or version moved on; the caller must reload."""

    status = 409


class TooManyRequests(DomainError):
    """Refused for now; ``retry_after`` seconds from now it may succeed.

    The one number feeds both the ``Retry-After`` header and the body (``retry_after``
    and the sentence in ``detail``), so they cannot disagree.
    """

    status = 429

    def __init__(self, message: str, retry_after: int, field: str | None = None) -> None:
        super().__init__(message, field)
        self.retry_after = max(1, int(retry_after))
