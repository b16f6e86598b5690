"""A stand-in agency webhook for the delivery benchmark, run as its own process.

It answers every POST with 200 at once and notes when each referral arrived (wall
clock, so the bench can compare with the approval time); ``GET /stats`` returns them.
``python -m bench.agency_server PORT``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

arrivals: dict[int, float] = {}
deliveries = [0]
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY, as production servers set it: the answer's headers and body are two
    # writes, and on a kept-alive connection Nagle would hold the body for the client's
    # delayed ACK (40 ms a delivery).
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        now = time.time()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            referral_id = int(json.loads(body)["referral_id"])
        except (ValueError, KeyError, TypeError):
            referral_id = -1
        with lock:
            deliveries[0] += 1
            arrivals.setdefault(referral_id, now)  # the first arrival counts
        self._answer(b'{"received":true}')

    def do_GET(self) -> None:
        with lock:
            data = {"deliveries": deliveries[0], "arrivals": arrivals}
        self._answer(json.dumps(data).encode())

    def _answer(self, payload: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_args: object) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
