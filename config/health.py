"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from apiflask import APIFlask
from sqlalchemy import text

from config.database import db_session, runtime
from intake.replay import readiness


def init_app(app: APIFlask) -> None:
    @app.get("/healthz")
    @app.doc(summary="The process is up", tags=["health"])
    def healthz() -> Any:
        return {"status": "ok"}

    @app.get("/readyz")
    @app.doc(summary="Database and queue reachable", tags=["health"], responses=[200, 503])
    def readyz() -> Any:
        checks: dict[str, str] = {}
        try:
            db_session().execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            checks["database"] = f"unreachable: {type(exc).__name__}"
        settings = runtime().settings
        if settings.redis_url:
            from redis import Redis

            try:
                Redis.from_url(settings.redis_url, socket_timeout=1).ping()
                checks["queue"] = "ok"
            except Exception as exc:  # noqa: BLE001
                checks["queue"] = f"unreachable: {type(exc).__name__}"
        else:
            checks["queue"] = "ok (embedded)"
        queue_ok = checks["queue"].startswith("ok")
        # With the database down but the outage spool writable, intake still takes tips:
        # "degraded: spooling" answers 200, so a load balancer keeps sending them here.
        status, spool_check = readiness(
            app.extensions.get("spool"), checks["database"] == "ok"
        )
        checks.update(spool_check)
        if not queue_ok and status == "ready":
            status = "not ready"
        code = 503 if status == "not ready" else 200
        return {"status": status, "checks": checks}, code
