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
