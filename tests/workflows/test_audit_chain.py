"""Every transition writes one hash-chained audit event; `audit verify` finds tampering."""

from __future__ import annotations

from sqlalchemy import select, text

from workflows.models import AuditEvent

SEX = {"facts": {"victim_age": 16, "commercial_sex": True}}


def _drive(cases, operator, supervisor) -> int:  # type: ignore[no-untyped-def]
    case_id = cases.call(operator)["id"]
    cases.screen(operator, case_id, SEX)
    cases.event(operator, case_id, "submit_for_approval")
    cases.event(supervisor, case_id, "approve", reason="ok")
    return case_id  # type: ignore[no-any-return]


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
    chain = db_session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [e.prev_hash for e in chain[1:]] == [e.hash for e in chain[:-1]]


def test_audit_verify_passes_then_names_the_first_tampered_event(
    cases, operator, supervisor, db_session, runner
) -> None:
    _drive(cases, operator, supervisor)
    intact = runner.invoke(args=["audit", "verify"])
    assert intact.exit_code == 0, intact.output
    assert "audit chain intact" in intact.output
    approve_id = db_session.scalar(select(AuditEvent.id).where(AuditEvent.action == "approve"))
    db_session.execute(text("UPDATE audit_events SET reason = 'nothing to see' WHERE id = :i"),
                       {"i": approve_id})
    db_session.commit()
    broken = runner.invoke(args=["audit", "verify"])
    assert broken.exit_code == 1
    assert f"BROKEN at event {approve_id}: contents do not match the hash" in broken.output


def test_audit_verify_notices_a_deleted_event(
    cases, operator, supervisor, db_session, runner
) -> None:
    _drive(cases, operator, supervisor)
    screen_id = db_session.scalar(select(AuditEvent.id).where(AuditEvent.action == "screen"))
    db_session.execute(text("DELETE FROM audit_events WHERE id = :i"), {"i": screen_id})
    db_session.commit()
    broken = runner.invoke(args=["audit", "verify"])
    assert broken.exit_code == 1
    assert f"BROKEN at event {screen_id + 1}: previous hash does not match" in broken.output
