"""Supervisor pages: the queues (by state, priority, age and deadline; late items first
and counted at the top) and the failed deliveries with their retry button.

What counts as open, late or awaiting an agency comes from ``workflows.machines``, the
same definitions the API's queue uses.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, render_template, request
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import selectinload

from config.auth import current_user, login_required
from config.database import db_session
from workflows.db import utcnow
from workflows.machines import AWAITING_AGENCY, CASE_STATES, OPEN_CASE_STATES
from workflows.models import Case, Priority, Referral, Role

bp = Blueprint("supervisor_pages", __name__, template_folder="templates")

SUPERVISOR = [Role.SUPERVISOR.value]
PAGE_SIZE = 200


def _late_case(now: datetime) -> Any:
    return and_(Case.deadline.is_not(None), Case.deadline < now, Case.state.in_(OPEN_CASE_STATES))


def _late_referral(now: datetime) -> Any:
    return and_(
        Referral.deadline.is_not(None), Referral.deadline < now,
        Referral.state.in_(AWAITING_AGENCY),
    )


def queue_counts(session: Any, now: datetime) -> dict[str, Any]:
    """The numbers at the top of the queue page."""
    by_state = dict(
        session.execute(
            select(Case.state, func.count()).where(Case.purged_at.is_(None)).group_by(Case.state)
        ).all()
    )
    return {
        "late_cases": session.scalar(select(func.count()).where(_late_case(now))) or 0,
        "late_referrals": session.scalar(
            select(func.count()).select_from(Referral).where(_late_referral(now))
        ) or 0,
        "emergencies": session.scalar(
            select(func.count()).where(
                Case.priority == Priority.EMERGENCY.value, Case.state.in_(OPEN_CASE_STATES)
            )
        ) or 0,
        "failed": session.scalar(
            select(func.count()).select_from(Referral).where(Referral.state == "failed")
        ) or 0,
        "by_state": {state: by_state.get(state, 0) for state in CASE_STATES},
    }


@bp.get("/supervisor/")
@login_required(SUPERVISOR)
def queues() -> Any:
    session = db_session()
    now = utcnow()
    me = current_user()
    state = request.args.get("state") or ""
    priority = request.args.get("priority") or ""
    assignee = request.args.get("assignee") or ""
    overdue = request.args.get("overdue") == "on"
    query = select(Case).where(Case.purged_at.is_(None))
    if state in CASE_STATES:
        query = query.where(Case.state == state)
    else:
        query = query.where(Case.state.in_(OPEN_CASE_STATES))
    if priority in {p.value for p in Priority}:
        query = query.where(Case.priority == priority)
    if assignee == "me" and me is not None:
        query = query.where(Case.assignee_id == me.id)
    elif assignee == "none":
        query = query.where(Case.assignee_id.is_(None))
    # A referred case is late while one of its referrals still waits past its deadline.
    late_referral_case = select(Referral.case_id).where(_late_referral(now))
    is_late = or_(_late_case(now), Case.id.in_(late_referral_case))
    if overdue:
        query = query.where(is_late)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.options(selectinload(Case.assignee), selectinload(Case.referrals))
        .order_by(
            case((is_late, 0), else_=1),
            Case.priority_rank,
            Case.deadline.is_(None),
            Case.deadline,
            Case.created_at,
        )
        .limit(PAGE_SIZE)
    ).all()
    shown = [c.id for c in rows]
    late_ids = set(session.scalars(select(Case.id).where(is_late, Case.id.in_(shown))))
    return render_template(
        "supervisor/queues.html",
        counts=queue_counts(session, now),
        cases=rows,
        late_ids=late_ids,
        total=total,
        now=now,
        filters={"state": state, "priority": priority, "assignee": assignee, "overdue": overdue},
        states=CASE_STATES,
        priorities=[p.value for p in Priority],
    )


@bp.get("/supervisor/failed")
@login_required(SUPERVISOR)
def failed() -> Any:
    session = db_session()
    now = utcnow()
    failed_referrals = session.scalars(
        select(Referral)
        .where(Referral.state == "failed")
        .options(selectinload(Referral.case))
        .order_by(Referral.updated_at.desc())
        .limit(PAGE_SIZE)
    ).all()
    late_referrals = session.scalars(
        select(Referral)
        .where(_late_referral(now))
        .options(selectinload(Referral.case))
        .order_by(Referral.deadline)
        .limit(PAGE_SIZE)
    ).all()
    return render_template(
        "supervisor/failed.html", failed=failed_referrals, late=late_referrals, now=now
    )

