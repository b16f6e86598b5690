"""gunicorn's settings file: gunicorn reads ``./gunicorn.conf.py`` by default.

Its one job is the start-up warning of issue 11: ``HOTLINE_ENV`` unset means the
development defaults (generated keys, no checks), which must not go unnoticed on an
address other machines can reach. gunicorn knows its final binds (``-b`` or
``GUNICORN_CMD_ARGS``) only here.
"""

import os

from config.settings import exposure_warning


def when_ready(server):  # type: ignore[no-untyped-def]
    """Warn loudly, once, in the master's log, before any request is served."""
    environ = {**os.environ, **(server.cfg.env or {})}
    warning = exposure_warning(bool(environ.get("HOTLINE_ENV", "").strip()), server.cfg.bind)
    if warning:
        server.log.warning(warning)

# The sync worker, answering the requests gunicorn refuses itself (a request line over
# limit_request_line, header fields over their limits, malformed HTTP) in
# application/problem+json like the app does, instead of gunicorn's HTML page.
worker_class = "config.gunicorn_worker.ProblemSyncWorker"
# gunicorn's defaults, stated: a request line up to 4094 bytes (method, path, query and
# version; the API's longest query, a case-queue cursor, is far below it), 100 header
# fields of up to 8190 bytes. Longer: 414 / 431 problem+json.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
