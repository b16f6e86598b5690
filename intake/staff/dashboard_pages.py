"""The supervisors' dashboard: live figures drawn as server-side SVG charts."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from config.auth import login_required
from config.database import db_session
from intake import statistics as stats
from workflows.db import utcnow
from workflows.models import Role

bp = Blueprint("dashboard_pages", __name__, template_folder="templates")


@bp.get("/supervisor/dashboard")
@login_required([Role.SUPERVISOR.value, Role.ADMIN.value])
def dashboard() -> Any:
    figures = stats.dashboard(db_session(), utcnow())
    return render_template(
        "dashboard/dashboard.html",
        d=figures,
        day_labels=[day.strftime("%m-%d") for day in figures.days],
        state_rows=[
            (state.replace("_", " "), {"cases": n}) for state, n in figures.cases_by_state.items()
        ],
        agency_rows=[
            (a.agency, {"accepted": a.accepted, "declined": a.declined, "waiting": a.waiting,
                        "other": a.total - a.accepted - a.declined - a.waiting})
            for a in figures.agencies
        ],
        late_rows=[("cases", {"late": figures.late_cases}),
                   ("referrals", {"late": figures.late_referrals})],
    )

