"""Fixtures for the config tests: the app behind a real HTTP server."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server


@pytest.fixture
def live_server(app) -> Iterator[int]:  # type: ignore[no-untyped-def]
    """The app behind werkzeug's real HTTP server (it logs requests, terminates chunks)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    thread.join(timeout=10)
