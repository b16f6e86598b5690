"""Driving a tip to approved referrals through the workflows' own functions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from intake.services import add_tip_message
from tests.conftest import Actor
from workflows.casework import record_screening
from workflows.db import transaction
from workflows.lifecycle import fire_case_event
from workflows.models import Case, Referral, User

MINOR_IN_COMMERCIAL_SEX = {
    "facts": {"victim_age": 16, "commercial_sex": True, "trafficking_type": "sex"},
    "indicators": [],
    "consent": {"law_enforcement": None, "services": None, "callback": None},
}


def submit_tip(client: Any, narrative: str = "A girl of 16 is sold at the motel on Route 9.",
               **extra: Any) -> int:
    """A web tip through the public API; returns the new case's id."""
    answer = client.post("/api/v1/tips", json={"narrative": narrative, **extra})
    assert answer.status_code == 201, answer.get_json()
    from workflows.cases import find_by_reference

    with client.application.extensions["runtime"].session() as session:
        case = find_by_reference(session, answer.get_json()["reference"])
        assert case is not None
        return case.id


def screen_and_approve(
    app: Any, case_id: int, operator: Actor, supervisor: Actor,
    screening: dict[str, Any] | None = None,
) -> list[int]:
    """Screen, submit and approve: the referrals are queued; returns their ids."""
    runtime = app.extensions["runtime"]
    with runtime.session() as session:
        op = session.scalar(select(User).where(User.username == operator.username))
        sup = session.scalar(select(User).where(User.username == supervisor.username))
        with transaction(session):
            record_screening(
                session, case_id, op, screening or MINOR_IN_COMMERCIAL_SEX,
                catalogs=runtime.catalogs,
            )
        with transaction(session):
            fire_case_event(session, case_id, "submit_for_approval", op, version=None,
                            catalogs=runtime.catalogs)
        with transaction(session):
            fire_case_event(session, case_id, "approve", sup, version=None,
                            catalogs=runtime.catalogs)
        case = session.get(Case, case_id)
        assert case is not None and case.state == "referred", case and case.state
        return [r.id for r in case.referrals if r.state == "queued"]


def referral_state(app: Any, referral_id: int) -> str:
    """The referral's state as committed right now."""
    with app.extensions["runtime"].session() as session:
        referral = session.get(Referral, referral_id)
        assert referral is not None
        return referral.state


# FBI on a mandatory rule (a minor in commercial sex), ICE on the victim's law-enforcement
# consent (cross-border movement): one case, two bases.
TWO_BASES = {
    "facts": {"victim_age": 16, "commercial_sex": True, "trafficking_type": "sex",
              "cross_border": True},
    "indicators": [],
    "consent": {"law_enforcement": True, "services": None, "callback": None},
}
FOLLOW_UP = "He moved her to the blue house on Elm Street last night."


def follow_up(app: Any, case_id: int, text: str = FOLLOW_UP) -> None:
    """The tipster writes again through the follow-up thread."""
    with app.extensions["runtime"].session() as session, transaction(session):
        case = session.get(Case, case_id)
        add_tip_message(session, case, text, direction="in", author="tipster")


def case_json(client: Any, actor: Any, case_id: int) -> dict[str, Any]:
    answer = client.get(f"/api/v1/cases/{case_id}", headers=actor.headers)
    assert answer.status_code == 200, answer.get_json()
    return dict(answer.get_json())


def by_agency(app: Any, case_id: int) -> dict[str, int]:
    with app.extensions["runtime"].session() as session:
        rows = session.scalars(select(Referral).where(Referral.case_id == case_id))
        return {r.agency_code: r.id for r in rows}
