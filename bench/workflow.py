"""Workflow: case transitions per second in-process and through the API, and what the
``transitions`` machine costs per case against setting the state column directly.

Each case cycles ``request_info`` / ``info_received`` (screening ⇄ awaiting_info), a
pair any case may repeat forever, so every step is a real guarded transition with its
audit event, on PostgreSQL.
"""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from types import SimpleNamespace
from typing import Any

from bench.environment import BenchEnv
from bench.load import percentile
from bench.queues import staff_token
from bench.report import Report, Row
from bench.sizes import Sizes


class ApiMissing(Exception):
    """The case events endpoint is not served (yet)."""


NEXT = {"screening": "request_info", "awaiting_info": "info_received"}
DEST = {"request_info": "awaiting_info", "info_received": "screening"}


def _in_process_app(env: BenchEnv) -> Any:
    from config.app import create_app
    from config.settings import Settings

    return create_app(Settings.from_env(env.environ()))


def _operator(session: Any, name: str) -> Any:
    from sqlalchemy import select

    from workflows.accounts import create_user
    from workflows.models import User

    user = session.scalar(select(User).where(User.username == name))
    return user or create_user(session, name, "operator")


def _screening_cases(
    session: Any, actor: Any, count: int, catalogs: Any
) -> list[tuple[int, int]]:
    from workflows.cases import open_case
    from workflows.db import transaction
    from workflows.lifecycle import fire_case_event

    ids = []
    for _ in range(count):
        with transaction(session):
            case = open_case(session, actor="bench", channel="web")
        with transaction(session):
            case = fire_case_event(
                session, case.id, "start_screening", actor, version=case.version,
                catalogs=catalogs,
            )
        ids.append((case.id, case.version))
    return ids


def machine_cost_us(repeats: int = 20_000) -> tuple[float, float]:
    """Microseconds per ``fire`` through the machine, and per direct column write."""
    from workflows.machines import Context, allowed_events, case_machine, fire

    actor = SimpleNamespace(role="operator", username="bench", agency_code=None)
    row = SimpleNamespace(state="screening")
    ctx = Context(actor, "bench")  # type: ignore[arg-type]
    t0 = time.perf_counter()
    for _ in range(repeats):
        fire(case_machine, row, NEXT[row.state], ctx)
    machine = (time.perf_counter() - t0) / repeats * 1e6
    t0 = time.perf_counter()
    for _ in range(repeats):
        event = NEXT[row.state]
        if event not in allowed_events(case_machine, row.state):
            raise AssertionError(event)
        row.state = DEST[event]
    direct = (time.perf_counter() - t0) / repeats * 1e6
    return machine, direct


def _direct_transition(session: Any, case_id: int, event: str, actor: Any, cats: Any) -> None:
    """fire_case_event without the machine: the same reads, writes and audit event."""
    from workflows.audit import record_event
    from workflows.cases import get_case
    from workflows.deadlines import refresh_case_deadline

    case = get_case(session, case_id)
    from_state = case.state
    case.state = DEST[event]
    record_event(session, actor=actor.username, action=event, case_id=case.id,
                 from_state=from_state, to_state=case.state, reason="bench")
    refresh_case_deadline(case, cats["routing"].case_deadlines)
    session.flush()


def in_process(env: BenchEnv, count: int) -> tuple[list[float], list[float]]:
    """Per-transition seconds through fire_case_event, and with the column set directly."""
    from workflows.cases import get_case
    from workflows.db import transaction
    from workflows.lifecycle import fire_case_event

    app = _in_process_app(env)
    runtime = app.extensions["runtime"]
    machine, direct = [], []
    with app.app_context():
        session = runtime.session()
        with transaction(session):
            actor = _operator(session, "bench-operator-inproc")
        case_ids = [cid for cid, _version in _screening_cases(session, actor, 4, runtime.catalogs)]
        cats = runtime.catalogs
        for i in range(count):
            case_id = case_ids[i % len(case_ids)]
            state = get_case(session, case_id).state
            t0 = time.perf_counter()
            with transaction(session):
                case = get_case(session, case_id)
                fire_case_event(session, case_id, NEXT[state], actor, version=case.version,
                                reason="bench", catalogs=cats)
            machine.append(time.perf_counter() - t0)
            state = get_case(session, case_id).state
            t0 = time.perf_counter()
            with transaction(session):
                _direct_transition(session, case_id, NEXT[state], actor, cats)
            direct.append(time.perf_counter() - t0)
        session.close()
    runtime.engine.dispose()
    return machine, direct


def through_api(env: BenchEnv, sizes: Sizes, threads: int = 4) -> tuple[int, float, list[float]]:
    """Transitions through ``POST /api/v1/cases/<id>/events``, one case per thread."""
    token = staff_token(env, "bench-operator", "operator")
    app = _in_process_app(env)
    runtime = app.extensions["runtime"]
    with app.app_context():
        session = runtime.session()
        from workflows.db import transaction

        with transaction(session):
            actor = _operator(session, "bench-operator")
        case_ids = _screening_cases(session, actor, threads, runtime.catalogs)
        session.close()
    runtime.engine.dispose()
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    with env.gunicorn() as base:
        host, port = base.removeprefix("http://").split(":")
        stop_at = time.perf_counter() + sizes.seconds

        def drive(case_id: int, version: int) -> None:
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            state = "screening"
            mine = []
            while time.perf_counter() < stop_at:
                body = json.dumps({"event": NEXT[state], "version": version, "reason": "bench"})
                t0 = time.perf_counter()
                conn.request("POST", f"/api/v1/cases/{case_id}/events", body, headers)
                resp = conn.getresponse()
                data = resp.read()
                mine.append(time.perf_counter() - t0)
                if resp.status in (404, 405) and not mine[1:]:
                    with lock:
                        errors.append("missing")
                    return
                if resp.status != 200:
                    with lock:
                        errors.append(f"{resp.status} {data[:200]!r}")
                    return
                answer = json.loads(data)
                state, version = answer["state"], answer["version"]
            with lock:
                latencies.extend(mine)

        started = time.perf_counter()
        pool = [threading.Thread(target=drive, args=pair) for pair in case_ids]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        elapsed = time.perf_counter() - started
    if errors and errors[0] == "missing":
        raise ApiMissing()
    if errors:
        raise RuntimeError(f"API transition failed: {errors[0]}")
    return len(latencies), elapsed, latencies


def run(env: BenchEnv, report: Report, sizes: Sizes) -> None:
    machine_us, direct_us = machine_cost_us(200 if report.smoke else 20_000)
    report.add(Row("workflow", "machine fire() per transition", machine_us, "us",
                   ratio=machine_us / direct_us, ratio_to="of a direct column write",
                   note=f"direct write {direct_us:.2f} us"))
    with_machine, direct = in_process(env, sizes.transitions)
    rate = len(with_machine) / sum(with_machine)
    report.add(Row("workflow", "in-process fire_case_event + commit", rate, "transitions/s",
                   statistics.median(with_machine) * 1000, percentile(with_machine, 99) * 1000,
                   ratio=statistics.median(with_machine) / statistics.median(direct),
                   ratio_to="of state set directly"))
    report.add(Row("workflow", "in-process state set directly + commit",
                   len(direct) / sum(direct), "transitions/s",
                   statistics.median(direct) * 1000, percentile(direct, 99) * 1000))
    try:
        count, elapsed, latencies = through_api(env, sizes)
    except ApiMissing:
        report.note("POST /api/v1/cases/<id>/events is not served yet: API transitions not "
                    "measured; machine share given against the in-process transition")
        share = machine_us / (statistics.median(with_machine) * 1e6)
        report.add(Row("workflow", "machine share of in-process transition", share * 100, "%",
                       target="< 10%", ok=share < 0.10))
        return
    p50 = statistics.median(latencies)
    report.add(Row("workflow", "API POST /cases/<id>/events (4 clients)", count / elapsed,
                   "transitions/s", p50 * 1000, percentile(latencies, 99) * 1000,
                   note="python client, 4 threads"))
    share = machine_us / (p50 * 1e6)
    report.add(Row("workflow", "machine share of API transition", share * 100, "%",
                   target="< 10%", ok=share < 0.10))
