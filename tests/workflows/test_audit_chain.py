"""The audit log: per-case chains keyed with HMAC (AUDIT_KEYS), heads and signed anchors.

`audit verify` finds changed, removed, inserted, reordered and moved events, a whole
case's events removed, rewrites by someone without the key, and says which key verified
which events (issue 11 item 9; issue 15: appends to different cases do not wait).
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from sqlalchemy import select, text, update

from workflows.audit import (
    GENESIS,
    audit_keys,
    erase_case_content,
    key_id_of,
    legacy_event_hash,
    record_event,
    verify_chain,
    write_anchor,
)
from workflows.db import transaction
from workflows.models import AuditAnchor, AuditChainHead, AuditEvent

SEX = {"facts": {"victim_age": 16, "commercial_sex": True}}


def _drive(cases, operator, supervisor) -> int:  # type: ignore[no-untyped-def]
    case_id = cases.call(operator)["id"]
    cases.screen(operator, case_id, SEX)
    cases.event(operator, case_id, "submit_for_approval")
    cases.event(supervisor, case_id, "approve", reason="ok")
    return case_id  # type: ignore[no-any-return]


def _events(db_session, case_id: int) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    db_session.expire_all()
    return list(db_session.scalars(
        select(AuditEvent).where(AuditEvent.chain == case_id).order_by(AuditEvent.seq)
    ))


def _verify(runner) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["audit", "verify"])
    return result.exit_code, result.output


def test_each_transition_is_one_event_with_actor_from_to_and_reason(
    cases, operator, supervisor, db_session
) -> None:
    case_id = _drive(cases, operator, supervisor)
    rows = db_session.scalars(
        select(AuditEvent).where(AuditEvent.case_id == case_id, AuditEvent.referral_id.is_(None),
                                 AuditEvent.action != "view_pii").order_by(AuditEvent.id)
    ).all()
    assert [(e.action, e.from_state, e.to_state, e.actor) for e in rows] == [
        ("open", None, "received", operator.username),
        ("start_screening", "received", "screening", operator.username),
        ("screen", "screening", "screening", operator.username),
        ("submit_for_approval", "screening", "pending_approval", operator.username),
        ("approve", "pending_approval", "referred", supervisor.username),
    ]
    assert rows[-1].reason == "ok"
    chain = _events(db_session, case_id)
    assert [e.seq for e in chain] == list(range(1, len(chain) + 1))
    assert chain[0].prev_hash == GENESIS
    assert [e.prev_hash for e in chain[1:]] == [e.hash for e in chain[:-1]]
    head = db_session.get(AuditChainHead, case_id)
    assert (head.last_seq, head.last_hash) == (chain[-1].seq, chain[-1].hash)


def test_each_case_has_its_own_chain(cases, operator, supervisor, db_session) -> None:
    first = _drive(cases, operator, supervisor)
    second = _drive(cases, operator, supervisor)
    for case_id in (first, second):
        chain = _events(db_session, case_id)
        assert {e.case_id for e in chain} == {case_id}
        assert chain[0].seq == 1 and chain[0].prev_hash == GENESIS


def test_audit_verify_passes_and_says_which_key_verified_what(
    cases, operator, supervisor, db_session, runner, settings
) -> None:
    _drive(cases, operator, supervisor)
    code, output = _verify(runner)
    assert code == 0, output
    count = db_session.scalar(select(text("count(*)")).select_from(AuditEvent))
    first_id, last_id = db_session.execute(
        select(text("min(id)"), text("max(id)")).select_from(AuditEvent)
    ).one()
    key = key_id_of(settings.audit_keys[0])
    assert f"key {key} (AUDIT_KEYS #1, signing) verified {count} event(s), " \
           f"ids {first_id} to {last_id}" in output
    assert f"audit chain intact: {count} events verified" in output


def test_a_changed_reason_is_found(cases, operator, supervisor, db_session, runner) -> None:
    _drive(cases, operator, supervisor)
    approve_id = db_session.scalar(select(AuditEvent.id).where(AuditEvent.action == "approve"))
    db_session.execute(text("UPDATE audit_events SET reason = 'nothing to see' WHERE id = :i"),
                       {"i": approve_id})
    db_session.commit()
    code, output = _verify(runner)
    assert code == 1
    assert f"BROKEN at event {approve_id}: contents do not match the hash" in output


def test_a_rewrite_without_the_key_is_found(
    cases, operator, supervisor, db_session, runner
) -> None:
    """The hole of issue 11 item 9: with plain SHA-256, anyone who can write to the
    database recomputes every hash after a change and the chain verifies again."""
    case_id = _drive(cases, operator, supervisor)
    chain = _events(db_session, case_id)
    target = next(e for e in chain if e.action == "approve")
    prev = GENESIS
    for event in chain:  # rewrite the reason, then recompute the whole chain, unkeyed
        if event.id == target.id:
            event.reason = "approved without reading"
        digest = legacy_event_hash(prev, event)
        db_session.execute(
            update(AuditEvent).where(AuditEvent.id == event.id)
            .values(reason=event.reason, prev_hash=prev, hash=digest)
        )
        prev = digest
    db_session.execute(update(AuditChainHead).where(AuditChainHead.chain == case_id)
                       .values(last_hash=prev))
    db_session.commit()
    code, output = _verify(runner)
    assert code == 1 and "BROKEN" in output
    # The same rewrite with a key of the attacker's own choosing fails too.
    assert "contents do not match the hash" in output


def test_a_deleted_event_is_found(cases, operator, supervisor, db_session, runner) -> None:
    case_id = _drive(cases, operator, supervisor)
    screen = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "screen"))
    db_session.execute(text("DELETE FROM audit_events WHERE id = :i"), {"i": screen.id})
    db_session.commit()
    code, output = _verify(runner)
    assert code == 1
    assert f"chain {case_id}: event {screen.seq} is missing" in output


def test_a_deleted_tail_is_found_by_the_head(
    cases, operator, supervisor, db_session, runner
) -> None:
    case_id = _drive(cases, operator, supervisor)
    last = _events(db_session, case_id)[-1]
    db_session.execute(text("DELETE FROM audit_events WHERE id = :i"), {"i": last.id})
    db_session.commit()
    code, output = _verify(runner)
    assert code == 1
    assert f"chain {case_id}: events after seq {last.seq - 1} are missing" in output


def test_reordered_events_are_found(cases, operator, supervisor, db_session, runner) -> None:
    case_id = _drive(cases, operator, supervisor)
    (a_id, a_seq), (b_id, b_seq) = [(e.id, e.seq) for e in _events(db_session, case_id)[1:3]]
    swap = "UPDATE audit_events SET seq = :s WHERE id = :i"
    db_session.execute(text(swap), {"s": -1, "i": a_id})
    db_session.execute(text(swap), {"s": a_seq, "i": b_id})
    db_session.execute(text(swap), {"s": b_seq, "i": a_id})
    db_session.commit()
    code, output = _verify(runner)
    assert code == 1 and "BROKEN" in output


def test_an_event_moved_to_another_case_is_found(
    cases, operator, supervisor, db_session, runner
) -> None:
    first = _drive(cases, operator, supervisor)
    second = _drive(cases, operator, supervisor)
    approve = _events(db_session, first)[-1]
    db_session.execute(update(AuditEvent).where(AuditEvent.id == approve.id)
                       .values(case_id=second))
    db_session.commit()
    code, output = _verify(runner)
    assert code == 1 and f"BROKEN at event {approve.id}" in output


def test_a_whole_case_removed_is_found_by_the_anchor(
    cases, operator, supervisor, db_session, runner
) -> None:
    """Per-case chains alone cannot see a case whose events and head are all gone."""
    first = _drive(cases, operator, supervisor)
    _drive(cases, operator, supervisor)
    with transaction(db_session):
        anchor = write_anchor(db_session)
    assert anchor is not None and first in [entry[0] for entry in anchor.entries]
    assert _verify(runner)[0] == 0
    db_session.execute(text("DELETE FROM audit_events WHERE chain = :c"), {"c": first})
    db_session.execute(text("DELETE FROM audit_chain_heads WHERE chain = :c"), {"c": first})
    db_session.commit()
    code, output = _verify(runner)
    assert code == 1
    assert f"case chain {first}: anchored event" in output and "removed" in output


def test_anchors_chain_and_name_only_heads_that_moved(
    cases, operator, supervisor, db_session, runner
) -> None:
    first = _drive(cases, operator, supervisor)
    with transaction(db_session):
        one = write_anchor(db_session)
    with transaction(db_session):
        assert write_anchor(db_session) is None  # nothing moved
    second = _drive(cases, operator, supervisor)
    with transaction(db_session):
        two = write_anchor(db_session)
    assert one is not None and two is not None
    assert {e[0] for e in one.entries} >= {first}
    assert {e[0] for e in two.entries} == {second}  # the first case did not move
    assert two.prev_mac == one.mac and two.seq == one.seq + 1
    assert _verify(runner)[0] == 0
    # Removing an anchor, or editing one, is found.
    db_session.execute(update(AuditAnchor).where(AuditAnchor.id == two.id)
                       .values(entries=[[second, 1, "0" * 64]]))
    db_session.commit()
    code, output = _verify(runner)
    assert code == 1 and f"anchor {two.seq}: contents do not match its signature" in output
    db_session.execute(text("DELETE FROM audit_anchors WHERE id = :i"), {"i": one.id})
    db_session.commit()
    code, output = _verify(runner)
    assert code == 1 and "anchor 1 is missing" in output


def test_keys_rotate_newest_signs_old_ones_verify(
    app, cases, operator, supervisor, db_session, runner, settings, monkeypatch
) -> None:
    old = settings.audit_keys[0]
    first = _drive(cases, operator, supervisor)
    new = "a-newer-audit-key-" + "x" * 20
    audit_keys.configure((new, old))
    try:
        second = _drive(cases, operator, supervisor)
        assert {e.key_id for e in _events(db_session, second)} == {key_id_of(new)}
        assert {e.key_id for e in _events(db_session, first)} == {key_id_of(old)}
        code, output = _verify(runner)
        assert code == 0, output
        assert f"key {key_id_of(new)} (AUDIT_KEYS #1, signing) verified" in output
        assert f"key {key_id_of(old)} (AUDIT_KEYS #2) verified" in output
        # The old key retired too early: its events no longer verify, and verify says so.
        audit_keys.configure((new,))
        code, output = _verify(runner)
        assert code == 1
        assert f"signed by key {key_id_of(old)}, which is not in AUDIT_KEYS" in output
    finally:
        audit_keys.configure(settings.audit_keys)


def test_a_purge_erases_audit_text_and_the_chain_still_verifies(
    cases, operator, supervisor, db_session, runner
) -> None:
    case_id = _drive(cases, operator, supervisor)
    with transaction(db_session):
        assert erase_case_content(db_session, case_id) > 0
        record_event(db_session, actor="system:retention", action="purge", case_id=case_id)
    events = _events(db_session, case_id)
    assert all(e.reason is None and e.detail is None for e in events[:-1])
    code, output = _verify(runner)
    assert code == 0, output


def test_erasing_text_outside_a_purge_is_found(
    cases, operator, supervisor, db_session, runner
) -> None:
    """An attacker cannot hide an edit by calling it an erasure."""
    case_id = _drive(cases, operator, supervisor)
    with transaction(db_session):
        erase_case_content(db_session, case_id)
    code, output = _verify(runner)
    assert code == 1 and "content erased without a purge of its case" in output


def test_events_of_no_case_form_chain_zero(client, db_session, runner) -> None:
    with transaction(db_session):
        record_event(db_session, actor="alice", action="login")
    with transaction(db_session):
        record_event(db_session, actor="bob", action="login")
    zero = _events(db_session, 0)
    assert [e.seq for e in zero] == [1, 2] and zero[1].prev_hash == zero[0].hash
    assert _verify(runner)[0] == 0


def test_a_rolled_back_transaction_leaves_no_event(client, db_session, runner) -> None:
    with pytest.raises(RuntimeError), transaction(db_session):
        record_event(db_session, actor="alice", action="login")
        raise RuntimeError("changed my mind")
    assert _events(db_session, 0) == []
    assert _verify(runner)[0] == 0


def test_the_anchor_command_and_the_scheduled_job(
    cases, operator, supervisor, db_session, runner
) -> None:
    from referrals.tasks import run_audit_anchor

    _drive(cases, operator, supervisor)
    result = runner.invoke(args=["audit", "anchor"])
    assert result.exit_code == 0 and "anchor 1: 1 chain head(s)" in result.output
    _drive(cases, operator, supervisor)
    assert run_audit_anchor() == 1
    assert runner.invoke(args=["audit", "anchor"]).output.startswith("nothing moved")


def test_the_embedded_worker_anchors_with_its_deadline_watch(
    app, cases, operator, supervisor, db_session
) -> None:
    from referrals.embedded import run_embedded_once

    _drive(cases, operator, supervisor)
    run_embedded_once(app.extensions["runtime"], check_deadlines=True)
    assert db_session.scalar(select(AuditAnchor.seq)) == 1


def test_verify_warns_when_old_events_are_not_anchored(
    cases, operator, supervisor, db_session
) -> None:
    from datetime import timedelta

    from workflows.db import utcnow

    _drive(cases, operator, supervisor)
    later = utcnow() + timedelta(hours=1)
    report = verify_chain(db_session, now=later)
    assert report.ok and report.warnings and "not anchored" in report.warnings[0]
    with transaction(db_session):
        write_anchor(db_session)
    assert verify_chain(db_session, now=later).warnings == []


@pytest.mark.services
def test_commits_on_different_cases_do_not_wait_for_each_other(
    app, cases, operator, supervisor, db_session
) -> None:
    """Issue 15: one case's chain head is locked only by writers of that case."""
    if not db_session.get_bind().dialect.name == "postgresql":
        pytest.skip("row locks: PostgreSQL")
    first = cases.call(operator)["id"]
    second = cases.call(operator)["id"]
    runtime = app.extensions["runtime"]
    holder = runtime.session()
    holder.execute(text("SELECT 1 FROM audit_chain_heads WHERE chain = :c FOR UPDATE"),
                   {"c": first})
    try:
        other = runtime.session()
        other.execute(text("SET lock_timeout = '3s'"))
        started = time.monotonic()
        with transaction(other):
            record_event(other, actor="x", action="note", case_id=second)
        assert time.monotonic() - started < 3
        other.close()
        # The same case does wait: its head is held.
        blocked = runtime.session()
        blocked.execute(text("SET lock_timeout = '500ms'"))
        with pytest.raises(Exception, match="lock timeout"), transaction(blocked):
            record_event(blocked, actor="x", action="note", case_id=first)
        blocked.close()
    finally:
        holder.rollback()
        holder.close()


def test_concurrent_appends_to_one_case_never_fork_its_chain(app, cases, operator, runner) -> None:
    case_id = cases.call(operator)["id"]
    runtime = app.extensions["runtime"]
    errors: list[BaseException] = []

    def append(n: int) -> None:
        session = runtime.session()
        try:
            for i in range(5):
                with transaction(session):
                    record_event(session, actor=f"t{n}", action="note", case_id=case_id,
                                 reason=f"{n}-{i}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            session.close()

    threads = [threading.Thread(target=append, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    code, output = _verify(runner)
    assert code == 0, output


def test_events_from_before_the_keys_migrate_and_still_verify(tmp_path, settings) -> None:
    """Migration 0002: old unkeyed events stay checkable, their cases' chains continue."""
    from sqlalchemy import create_engine

    from config.cli import upgrade_database
    from workflows.db import make_session_factory, utcnow

    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    upgrade_database(url, "0001")
    engine = create_engine(url)
    prev = GENESIS
    with engine.begin() as conn:
        for i, (case_id, action) in enumerate([(1, "open"), (None, "login"), (1, "close")]):
            event = AuditEvent(case_id=case_id, referral_id=None, actor="old", action=action,
                               from_state=None, to_state=None, reason=f"r{i}",
                               detail={"n": i}, created_at=utcnow())
            digest = legacy_event_hash(prev, event)
            conn.execute(text(
                "INSERT INTO audit_events (case_id, actor, action, reason, detail, created_at,"
                " prev_hash, hash) VALUES (:c, 'old', :a, :r, :d, :t, :p, :h)"),
                {"c": case_id, "a": action, "r": f"r{i}", "d": json.dumps({"n": i}),
                 "t": event.created_at.replace(tzinfo=None).isoformat(sep=" "),
                 "p": prev, "h": digest})
            prev = digest
    upgrade_database(url)
    session = make_session_factory(engine)()
    try:
        with transaction(session):
            record_event(session, actor="new", action="reopen", case_id=1)
        report = verify_chain(session)
        assert report.ok, report.problem
        assert [(k.position, k.events) for k in report.keys] == [(0, 1), (None, 3)]
        assert "legacy unkeyed SHA-256" in report.keys[1].describe()
        chain = list(session.scalars(select(AuditEvent).where(AuditEvent.chain == 1)
                                     .order_by(AuditEvent.seq)))
        assert [e.seq for e in chain] == [1, 2, 3] and chain[2].prev_hash == chain[1].hash
        session.execute(text("UPDATE audit_events SET reason = 'x' WHERE id = 1"))
        session.commit()
        assert not verify_chain(session).ok
    finally:
        session.close()
        engine.dispose()
