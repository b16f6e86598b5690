"""gunicorn's settings file: gunicorn reads ``./gunicorn.conf.py`` by default.

The start-up warning of issue 11: ``HOTLINE_ENV`` unset means the development defaults
(generated keys, no checks), which must not go unnoticed on an address other machines
can reach. gunicorn knows its final binds (``-b`` or ``GUNICORN_CMD_ARGS``) only here.

And Prometheus's multiprocess bookkeeping (``PROMETHEUS_MULTIPROC_DIR``): each worker
counts in files of its own, which ``/metrics`` adds up; a worker that exits is marked
dead, and files of processes long gone are removed when gunicorn starts.

With ``LOG_FORMAT=json`` gunicorn's own lines are JSON too: its loggers hand their
records to one root handler named as the app's (``config.logs``), which the app then
takes over (adding request ids). Its access log stays off, as by default: each line
would name the client's address and path.
"""

import os
from pathlib import Path

from config.settings import exposure_warning


def _multiproc_dir(server):  # type: ignore[no-untyped-def]
    environ = {**os.environ, **(server.cfg.env or {})}
    return environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def on_starting(server):  # type: ignore[no-untyped-def]
    """Remove the count files of processes that are gone (the last run's workers).

    Not the whole directory, as prometheus_client's docs suggest: a delivery worker on
    this host may share it and still be counting. Counters of the removed files restart
    from 0, which Prometheus reads as a counter reset.
    """
    folder = _multiproc_dir(server)
    if not folder:
        return
    for path in Path(folder).glob("*.db"):
        pid = path.stem.rpartition("_")[2]
        if pid.isdigit() and not _alive(int(pid)):
            path.unlink(missing_ok=True)


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    """A worker exited: its live gauges no longer count (prometheus_client's hook)."""
    folder = _multiproc_dir(server)
    if folder:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, folder)


def _json_logging():  # type: ignore[no-untyped-def]
    from config.logs import HANDLER_NAME

    quiet = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "config.logs.JsonLineFormatter"}},
        "handlers": {
            HANDLER_NAME: {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": "INFO", "handlers": [HANDLER_NAME]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", **quiet},
            "gunicorn.access": {"level": "WARNING", **quiet},
        },
    }


if os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
    logconfig_dict = _json_logging()


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
