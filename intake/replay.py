"""Spooling intake during a database outage, and replaying it when the database returns.

What the web and call-log channels write to the spool (``spool_*``; the IVR's steps:
``intake.voice.spool_voice_step``), how an item is put into the
database (``replay_item``: the same domain functions as the live request, with the
reference and passphrase hash the tipster was given), and the drainer: a thread in
each web process (started with the first request) that replays the spool while it
holds items. Several processes may drain at once: a lease in the spool lets one of
them drain at a time, in spool order, and the item's id written to ``spool_replays``
in the replay's own transaction makes any second replay of it a no-op.

Supervisors: the first item written to an empty spool is logged at CRITICAL (for
operations' alerting) and turns ``/readyz`` to "degraded: spooling"; when the spool
has drained, the drainer writes one ``spool_drained`` notice to the outbox (the
database is back by then), naming when spooling began and how many items it held.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from config.runtime import Runtime
from intake import services
from intake.models import SpoolReplay
from intake.outage import DATABASE_DOWN
from intake.passphrase import hash_passphrase
from intake.spool import Item, Spool
from workflows.audit import record_event
from workflows.cases import find_by_reference
from workflows.db import transaction
from workflows.errors import Conflict
from workflows.models import User
from workflows.outbox import add_notification

log = logging.getLogger(__name__)

DRAIN_BATCH = 50
DRAIN_LEASE_SECONDS = 60.0
TOKEN_MAX_AGE = 24 * 3600.0  # a staff token verified within a day works during an outage


# --- spooling, one function per channel ------------------------------------------------


def spool_web_tip(spool: Spool, data: dict[str, Any], reference: str, passphrase: str) -> str:
    """A web tip: its data, the reference and the passphrase's hash (never the passphrase)."""
    spool.put(
        "web",
        {"data": data, "reference": reference, "passphrase_hash": hash_passphrase(passphrase)},
        dedupe=f"web:{reference}",
        reference=reference,
    )
    return reference


def spool_call_log(spool: Spool, operator: User, data: dict[str, Any], reference: str) -> str:
    """An operator's call log, with who logged it."""
    item = spool.put(
        "call_log",
        {"data": data, "operator_id": operator.id, "reference": reference},
        dedupe=f"call_log:{reference}",
        reference=reference,
    )
    return item.id


# --- replay ----------------------------------------------------------------------------


def _spooled_at(item: Item) -> datetime:
    return datetime.fromtimestamp(item.created_at, UTC)


def _replay_work(session: Session, runtime: Runtime, item: Item) -> int | None:
    """The item's work, in the caller's transaction; the case id it touched."""
    detail = {"spooled_at": _spooled_at(item).isoformat()}
    payload = item.payload
    if item.kind == "web":
        if find_by_reference(session, payload["reference"]) is not None:
            return None  # committed live, though its answer was lost with the connection
        tip = services.submit_tip(
            session,
            payload["data"],
            reference=payload["reference"],
            passphrase_hash=payload["passphrase_hash"],
            detail=detail,
        )
        return tip.case.id
    if item.kind == "call_log":
        if find_by_reference(session, payload["reference"]) is not None:
            return None
        operator = session.get(User, payload["operator_id"])
        assert operator is not None, "the operator of a spooled call log is gone"
        try:
            case = services.log_call(
                session, operator, payload["data"], reference=payload["reference"],
                detail=detail,
            )
        except Conflict:
            return None  # the call (its CallSid) was recorded by the IVR or a colleague
        return case.id
    if item.kind == "sms":
        from intake.sms import replay_sms

        return replay_sms(session, runtime.catalogs["intake"], payload, detail["spooled_at"])
    if item.kind == "voice":
        from intake.calls import call_signal
        from intake.voice import STEPS

        STEPS[payload["step"]](session, payload["p"])
        return call_signal(session, payload["p"]["CallSid"]).case_id
    raise ValueError(f"unknown spool item kind {item.kind!r}")


def replay_item(runtime: Runtime, item: Item) -> bool:
    """Put one item into the database; False when it was there already (a no-op)."""
    session = runtime.session()
    try:
        with transaction(session):
            # The marker first: a concurrent replay of the same item waits on this key
            # and then fails, instead of doing the work a second time.
            marker = SpoolReplay(
                id=item.id, kind=item.kind, spooled_at=_spooled_at(item)
            )
            session.add(marker)
            session.flush()
            marker.case_id = _replay_work(session, runtime, item)
            record_event(
                session,
                actor="spool",
                action="replayed_from_spool",
                case_id=marker.case_id,
                detail={"kind": item.kind, "spooled_at": _spooled_at(item).isoformat()},
            )
        return True
    except IntegrityError:
        session.rollback()
        with transaction(session):
            if session.get(SpoolReplay, item.id) is not None:
                return False  # replayed before (another process, or before a crash)
        raise
    finally:
        session.close()


def drain(runtime: Runtime, spool: Spool, owner: str | None = None) -> int:
    """Replay what the spool holds, oldest first, while the database answers.

    Returns how many items were replayed (no-ops included). Only one process drains at
    a time (a lease in the spool), so a call's steps and a texter's texts replay in
    the order they came.
    """
    owner = owner or f"{os.getpid()}:{threading.get_ident()}"
    if not spool.take_drain_lease(owner, DRAIN_LEASE_SECONDS):
        return 0
    replayed = 0
    try:
        while True:
            items = spool.claim(DRAIN_BATCH, DRAIN_LEASE_SECONDS)
            if not items:
                break
            for item in items:
                try:
                    replay_item(runtime, item)
                except DATABASE_DOWN as exc:
                    spool.release(item, f"database unreachable: {type(exc).__name__}")
                    for rest in items[items.index(item) + 1:]:
                        spool.release(rest, "not tried: database unreachable")
                    return replayed
                except Exception as exc:
                    log.exception("spool: item %s (%s) failed to replay", item.id, item.kind)
                    spool.release(item, f"{type(exc).__name__}: {exc}")
                    continue
                spool.done(item)
                replayed += 1
            spool.take_drain_lease(owner, DRAIN_LEASE_SECONDS)  # renew
        _announce_drained(runtime, spool)
    finally:
        spool.drop_drain_lease(owner)
    return replayed


def _announce_drained(runtime: Runtime, spool: Spool) -> None:
    """Tell supervisors (through the outbox) that the spool is empty again."""
    outage = spool.outage()
    if outage is None or spool.count():
        return
    since, count = outage
    session = runtime.session()
    try:
        with transaction(session):
            add_notification(
                session, "spool_drained",
                spooled_since=datetime.fromtimestamp(since, UTC).isoformat(), items=count,
            )
            # Only the process that clears the outage record commits the notice.
            if not spool.close_outage(since):
                session.rollback()
                return
    finally:
        session.close()
    log.warning("spool: drained; %d item(s) spooled since %s are in the database", count,
                datetime.fromtimestamp(since, UTC).isoformat())


class Drainer(threading.Thread):
    """A daemon thread of a web process: replays the spool whenever it holds items."""

    def __init__(self, runtime: Runtime, spool: Spool) -> None:
        super().__init__(name="spool-drainer", daemon=True)
        self.runtime = runtime
        self.spool = spool
        self.stop = threading.Event()

    def run(self) -> None:
        pause = self.runtime.settings.spool_drain_ms / 1000
        while not self.stop.wait(pause):
            try:
                if self.spool.count() or self.spool.outage():
                    drain(self.runtime, self.spool)
            except Exception:
                log.exception("spool: drain pass failed")


_drainer_lock = threading.Lock()


def init_app(app: Any, runtime: Runtime) -> None:
    """Open this host's spool and start the drainer with the first request."""
    directory = runtime.settings.spool_path
    if directory is None:
        return
    spool = Spool(spool_file(directory, runtime.settings.database_url))
    app.extensions["spool"] = spool

    @app.before_request
    def _start_drainer() -> None:
        running = app.extensions.get("spool_drainer")
        if running is not None and running.pid == os.getpid():
            return
        with _drainer_lock:
            # A forked process (a gunicorn worker) starts its own: threads do not fork.
            drainer = app.extensions.get("spool_drainer")
            if drainer is None or drainer.pid != os.getpid():
                drainer = Drainer(runtime, spool)
                drainer.pid = os.getpid()  # type: ignore[attr-defined]
                drainer.start()
                app.extensions["spool_drainer"] = drainer


def spool_file(directory: Path, database_url: str) -> Path:
    """One spool file per database: items are only ever replayed where they belong."""
    digest = hashlib.sha256(database_url.encode("utf-8")).hexdigest()[:16]
    return directory / f"spool-{digest}.sqlite3"


def readiness(spool: Spool | None, database_ok: bool) -> tuple[str, dict[str, str]]:
    """The ``/readyz`` status word and the spool's line of its checks."""
    if spool is None:
        return ("ready" if database_ok else "not ready"), {}
    waiting = spool.count()
    line = {"spool": f"{waiting} waiting"}
    if waiting or not database_ok:
        return "degraded: spooling", line
    return "ready", line
