"""What gunicorn refuses before the app sees it is answered in problem+json too.

Runs the deployment's gunicorn (``gunicorn.conf.py`` picked up from the project root,
as in production) on a free port and talks raw HTTP/1.1 to it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from config.settings import ROOT


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _raw(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers, body


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = _free_port()
    folder = tmp_path_factory.mktemp("gunicorn")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
        "HOTLINE_INSTANCE_DIR": str(folder),
        "REDIS_URL": "",
    }
    log = folder / "gunicorn.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{port}",
             "--workers", "1", "--graceful-timeout", "2"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                status, _, _ = _raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                                          b"Connection: close\r\n\r\n")
                if status in (200, 503):
                    break
            except OSError:
                time.sleep(0.2)
            if proc.poll() is not None:
                raise RuntimeError(log.read_text())
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()  # our own child: it must not outlive the test
            proc.wait(5)


def _assert_problem(status: int, headers: dict[str, str], body: bytes, expected: int) -> dict:
    assert status == expected, body[:300]
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == expected and problem["type"] == "about:blank"
    assert problem["detail"] == problem["error"] and problem["title"]
    return problem


def test_a_request_line_over_the_limit_is_a_json_414(gunicorn: int) -> None:
    """Before: gunicorn's HTML page (400 on gunicorn 23, 414 on 27)."""
    query = "state=" + "x" * 5000
    request = f"GET /api/v1/cases?{query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    status, headers, body = _raw(gunicorn, request.encode())
    _assert_problem(status, headers, body, 414)
    assert "x" * 50 not in body.decode()  # the refused line is never echoed back


def test_a_request_line_just_under_the_limit_reaches_the_app(gunicorn: int) -> None:
    path = "/api/v1/tips/" + "R" * 3900
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    status, headers, _ = _raw(gunicorn, request.encode())
    assert status in (404, 422)  # the app's own answer (no passphrase / no such tip)
    assert headers["content-type"] == "application/problem+json"


def test_too_many_header_fields_are_a_json_431(gunicorn: int) -> None:
    fields = "".join(f"X-Filler-{i}: y\r\n" for i in range(150))
    request = f"GET /healthz HTTP/1.1\r\nHost: x\r\n{fields}Connection: close\r\n\r\n"
    status, headers, body = _raw(gunicorn, request.encode())
    _assert_problem(status, headers, body, 431)


def test_a_malformed_request_line_is_a_json_400(gunicorn: int) -> None:
    status, headers, body = _raw(gunicorn, b"GET\r\n\r\n")
    _assert_problem(status, headers, body, 400)
