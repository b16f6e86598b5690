"""Supervisor pages: the queues (by state, priority, age and deadline; late items first
and counted at the top), the agencies' questions waiting for an answer (a task on the
case's assignee, or for a supervisor to assign), and the failed deliveries with their
retry button.

The queue is ``workflows.queues.case_queue``, the same query (and keyset pages) the
API's ``GET /api/v1/cases`` uses; it sorts by deadline then age, so what is late comes
first. What counts as late comes from ``workflows.deadlines`` (``case_late``, ``referral_late``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from config.auth import current_user, login_required
from config.database import db_session
from intake.statistics import cases_by_state, late_counts
from workflows.db import utcnow
from workflows.deadlines import question_late, referral_late
from workflows.errors import InvalidInput
from workflows.machines import CASE_STATES, OPEN_CASE_STATES
from workflows.models import Case, Priority, Referral
from workflows.queues import QueueFilter, case_queue
from workflows.threads import open_questions
from workflows.vocabulary import SUPERVISOR

bp = Blueprint("supervisor_pages", __name__, template_folder="templates")

PAGE_SIZE = 100
# "All open": everything not closed, referred cases included (their referrals may be late).
DEFAULT_STATES = (*OPEN_CASE_STATES, "referred")


def _filters() -> tuple[QueueFilter, dict[str, Any]]:
    """The queue filter from the query string; anything unknown is simply not applied."""
    me = current_user()
    state = request.args.get("state") or ""
    priority = request.args.get("priority") or ""
    assignee = request.args.get("assignee") or ""
    overdue = request.args.get("overdue") == "on"
    chosen = QueueFilter(
        states=(state,) if state in CASE_STATES else DEFAULT_STATES,
        priority=priority if priority in {p.value for p in Priority} else None,
        assignee=(me.username if assignee == "me" and me else "none" if assignee == "none"
                  else None),
        overdue=True if overdue else None,
    )
    shown = {"state": state, "priority": priority, "assignee": assignee, "overdue": overdue}
    return chosen, shown


@bp.get("/supervisor/")
@login_required(SUPERVISOR)
def queues() -> Any:
    session = db_session()
    now = utcnow()
    chosen, shown = _filters()
    cursor = request.args.get("cursor") or None
    try:
        cases, next_cursor = case_queue(session, chosen, limit=PAGE_SIZE, cursor=cursor, now=now)
    except InvalidInput:  # a cursor we did not give out: start from the top
        cases, next_cursor = case_queue(session, chosen, limit=PAGE_SIZE, now=now)
    late_cases, late_referrals = late_counts(session, now)
    by_state = cases_by_state(session)
    counts = {
        "late_cases": late_cases,
        "late_referrals": late_referrals,
        "emergencies": session.scalar(
            select(func.count()).where(
                Case.priority == Priority.EMERGENCY.value, Case.state.in_(OPEN_CASE_STATES)
            )
        ) or 0,
        "failed": session.scalar(
            select(func.count()).select_from(Referral).where(Referral.state == "failed")
        ) or 0,
        "by_state": by_state,
        # Agencies waiting on the hotline: each question is a task with its own deadline.
        "late_questions": session.scalar(
            select(func.count())
            .select_from(Referral)
            .join(Case, Case.id == Referral.case_id)
            .where(question_late(now), Case.purged_at.is_(None))
        ) or 0,
    }
    next_args: dict[str, Any] = {**request.args.to_dict(), "cursor": next_cursor}
    return render_template(
        "supervisor/queues.html",
        counts=counts,
        cases=cases,
        questions=open_questions(session, limit=PAGE_SIZE),
        next_url=url_for("supervisor_pages.queues", **next_args) if next_cursor else None,
        now=now,
        filters=shown,
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
        .where(referral_late(now))
        .options(selectinload(Referral.case))
        .order_by(Referral.deadline)
        .limit(PAGE_SIZE)
    ).all()
    return render_template(
        "supervisor/failed.html", failed=failed_referrals, late=late_referrals, now=now
    )
