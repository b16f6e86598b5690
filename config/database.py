"""The request-scoped session for views: opened on first use, closed at teardown."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from config.runtime import Runtime


def init_app(app: Flask, runtime: Runtime) -> None:
    app.extensions["runtime"] = runtime

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()


def runtime() -> Runtime:
    """The runtime of the current app."""
    return current_app.extensions["runtime"]  # type: ignore[no-any-return]


def db_session() -> Session:
    """This request's session."""
    if "db_session" not in g:
        g.db_session = runtime().session()
    return g.db_session  # type: ignore[no-any-return]
