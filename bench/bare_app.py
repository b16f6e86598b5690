"""The framework's ceiling: a bare Flask app served by the same gunicorn settings.

It parses the same JSON body and answers the same shape as ``POST /api/v1/tips``, and
touches no database, so the ratio to it is what the service's own work costs.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask, request

app = Flask("bench_bare")


@app.get("/healthz")
def healthz() -> Any:
    return {"status": "ok"}


@app.post("/api/v1/tips")
def submit_tip() -> Any:
    data = request.get_json()
    if not isinstance(data, dict) or not data.get("narrative"):
        return {"error": "invalid"}, 422
    return {"reference": "HT-2026-000000", "passphrase": secrets.token_hex(8)}, 201
