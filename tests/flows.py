"""Cases driven through the same domain functions the API and pages use, for page tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from intake import services
from tests.factories import UserFactory
from workflows.casework import record_screening
from workflows.db import transaction
from workflows.lifecycle import fire_case_event, fire_referral_event
from workflows.models import Referral, User

# A minor in commercial sex: FBI, mandatory, 24 h (no consent needed).
MINOR_IN_COMMERCIAL_SEX = {
    "facts": {"victim_age": 16, "commercial_sex": True, "trafficking_type": "sex"},
    "indicators": ["under_18_commercial_sex"],
    "consent": {"law_enforcement": None, "services": None, "callback": None},
}


def _user(session: Any, role: str) -> User:
    """Any user in ``role`` (a test's own first), else the flows' own."""
    return session.scalar(select(User).where(User.role == role)) or UserFactory.in_session(
        session, username=f"flow-{role}", role=role
    )


def _catalogs(app: Any) -> dict[str, Any]:
    return app.extensions["runtime"].catalogs  # type: ignore[no-any-return]


def screened_case(app: Any, narrative: str = "A girl of 16 advertised online") -> int:
    """A logged call, screened as a minor in commercial sex; returns the case id."""
    with app.extensions["runtime"].session() as session, transaction(session):
        operator = _user(session, "operator")
        case = services.log_call(
            session, operator, {"caller_type": "community_member", "narrative": narrative}
        )
        record_screening(
            session, case.id, operator, MINOR_IN_COMMERCIAL_SEX, catalogs=_catalogs(app)
        )
        return case.id


def sent_referral(app: Any, narrative: str = "A girl of 16 advertised online") -> Referral:
    """A screened case submitted, approved and delivered (as the worker marks it): FBI's."""
    case_id = screened_case(app, narrative)
    with app.extensions["runtime"].session() as session:
        with transaction(session):
            operator = _user(session, "operator")
            fire_case_event(
                session, case_id, "submit_for_approval", operator, version=None,
                catalogs=_catalogs(app),
            )
        with transaction(session):
            supervisor = _user(session, "supervisor")
            fire_case_event(
                session, case_id, "approve", supervisor, version=None, catalogs=_catalogs(app)
            )
        referral = session.scalar(select(Referral).where(Referral.case_id == case_id))
        with transaction(session):
            fire_referral_event(
                session, referral.id, "mark_sent", None, catalogs=_catalogs(app)
            )
        return referral


def accepted_referral(app: Any, agency: str = "FBI", case_id: int | None = None) -> int:
    """A delivered referral handed to ``agency`` (and moved onto ``case_id`` if given) and
    accepted by it: the state in which outcomes are recorded. The routing that chose it is
    not what such tests are about."""
    referral = sent_referral(app)
    with app.extensions["runtime"].session() as session, transaction(session):
        row = session.get(Referral, referral.id)
        row.agency_code = agency
        if case_id is not None:
            row.case_id = case_id
        user = agency_user(session, agency)
        fire_referral_event(session, referral.id, "accept", user, catalogs=_catalogs(app))
    return referral.id


def agency_user(session: Any, agency: str) -> User:
    """The flows' user for ``agency`` (created on first use)."""
    return UserFactory.in_session(  # type: ignore[no-any-return]
        session, username=f"flow-{agency.lower()}", role="agency", agency_code=agency
    )


def record_outcome(app: Any, referral_id: int, **outcome: Any) -> None:
    """The referral's agency records one typed outcome, through the lifecycle."""
    with app.extensions["runtime"].session() as session, transaction(session):
        referral = session.get(Referral, referral_id)
        fire_referral_event(
            session, referral_id, "record_outcome", agency_user(session, referral.agency_code),
            data={"outcome": outcome}, catalogs=_catalogs(app),
        )
