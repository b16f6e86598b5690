"""Two people on one case at once: exactly one wins. Loading a row never resets its state."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from tests.factories import CaseFactory, ReferralFactory, UserFactory, bound_to
from workflows.db import transaction
from workflows.errors import Conflict, Forbidden
from workflows.lifecycle import fire_case_event
from workflows.machines import (
    CASE_STATES,
    REFERRAL_STATES,
    Context,
    allowed_events,
    case_machine,
    fire,
    referral_machine,
)
from workflows.models import Case, Referral, User

SEX = {
    "facts": {"victim_age": 16, "commercial_sex": True},
    "consent": {"law_enforcement": None, "services": None, "callback": None},
}


@pytest.fixture
def pending_case(cases, operator) -> int:  # type: ignore[no-untyped-def]
    """A case waiting for a supervisor's approval."""
    case_id = cases.call(operator)["id"]
    cases.screen(operator, case_id, SEX)
    cases.event(operator, case_id, "submit_for_approval")
    return case_id  # type: ignore[no-any-return]


def test_two_supervisors_approving_at_once_one_wins_the_other_409(
    app, pending_case, make_actor
) -> None:
    runtime = app.extensions["runtime"]
    names = [make_actor("supervisor").username, make_actor("supervisor").username]
    both_loaded = threading.Barrier(2)

    def approve(username: str) -> str:
        session = runtime.session()
        try:
            user = session.scalar(select(User).where(User.username == username))
            case = session.get(Case, pending_case)  # both read the same version first
            version = case.version
            both_loaded.wait(timeout=30)
            with transaction(session):
                fire_case_event(session, pending_case, "approve", user, version=version,
                                reason="go", catalogs=runtime.catalogs)
            return "won"
        except Conflict:
            return "409"
        finally:
            session.close()

    with ThreadPoolExecutor(2) as pool:
        results = sorted(pool.map(approve, names))
    assert results == ["409", "won"]
    with runtime.session() as session:
        case = session.get(Case, pending_case)
        assert case.state == "referred"
        approvals = [e for e in _events(session, pending_case) if e == "approve"]
        assert approvals == ["approve"]
        assert [r.state for r in case.referrals] == ["queued"]


def test_two_api_requests_on_one_case_one_200_one_409(
    app, pending_case, make_actor, cases
) -> None:
    actors = [make_actor("supervisor"), make_actor("supervisor")]
    version = cases.show(actors[0], pending_case)["version"]
    start = threading.Barrier(2)

    def post(actor) -> int:  # type: ignore[no-untyped-def]
        client = app.test_client()
        start.wait(timeout=30)
        return client.post(
            f"/api/v1/cases/{pending_case}/events",
            json={"event": "approve", "version": version, "reason": "go"},
            headers=actor.headers,
        ).status_code

    with ThreadPoolExecutor(2) as pool:
        assert sorted(pool.map(post, actors)) == [200, 409]


def _events(session, case_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    from workflows.models import AuditEvent

    return list(session.scalars(
        select(AuditEvent.action).where(AuditEvent.case_id == case_id).order_by(AuditEvent.id)
    ))


def test_loading_a_row_in_every_state_keeps_its_state_and_the_session_clean(app) -> None:
    runtime = app.extensions["runtime"]
    with runtime.session() as session, bound_to(session):
        cases = {state: CaseFactory(state=state) for state in CASE_STATES}
        first = cases[CASE_STATES[0]]
        refs = {state: ReferralFactory(case=first, state=state).id for state in REFERRAL_STATES}
        ids = {state: case.id for state, case in cases.items()}
        session.commit()
    with runtime.session() as session:
        for state, case_id in ids.items():
            case = session.get(Case, case_id)
            assert case_machine.get_model_state(case).name == state
            allowed_events(case_machine, case.state)
            assert case.state == state
        for state, referral_id in refs.items():
            referral = session.get(Referral, referral_id)
            assert referral_machine.get_model_state(referral).name == state
            assert referral.state == state
        assert not session.dirty and not session.new
        # The machines hold no rows: nothing was added to them, nothing kept alive.
        assert case_machine.models == [] and referral_machine.models == []


def test_a_refused_guard_is_raised_and_changes_nothing(app) -> None:
    runtime = app.extensions["runtime"]
    with runtime.session() as session:
        case = CaseFactory.in_session(session, state="pending_approval")
        session.commit()
        operator = UserFactory.build(role="operator")  # never saved: the guard needs no row
        with pytest.raises(Forbidden):
            fire(case_machine, case, "approve", Context(operator))
        assert case.state == "pending_approval"
        assert not session.dirty


def test_an_exception_after_the_state_changed_rolls_it_back(app, pending_case, monkeypatch) -> None:
    runtime = app.extensions["runtime"]
    import workflows.referral_events as referral_events

    def explode(*_a, **_k):  # type: ignore[no-untyped-def]
        raise RuntimeError("outbox down")

    monkeypatch.setattr(referral_events, "add_outbox_message", explode)
    with runtime.session() as session:
        boss = UserFactory.in_session(session, role="supervisor")
        session.commit()
        with pytest.raises(RuntimeError), transaction(session):
            fire_case_event(session, pending_case, "approve", boss, version=None,
                            reason="go", catalogs=runtime.catalogs)
        case = session.get(Case, pending_case)
        assert case.state == "pending_approval"
        assert [r.state for r in case.referrals] == ["pending"]
