"""Researchers' door: the de-identified extract (API and a page), never a case.

``GET /api/v1/exports/research?from=YYYY-MM-DD&to=YYYY-MM-DD`` streams a zip holding a
Frictionless Data Package (workflows/datapackage.py); the page ``/research/`` offers the
same download to a signed-in researcher. Each export is written to the audit log (who,
which range), with no case in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from apiflask import APIBlueprint, FileSchema
from apiflask.fields import Date
from flask import Blueprint, Response, render_template, request, stream_with_context

from config.auth import actor_name, current_user, login_required, token_auth
from config.database import db_session, runtime
from intake.schemas import StrictSchema
from workflows.audit import record_event
from workflows.datapackage import stream_package
from workflows.db import transaction, utcnow
from workflows.errors import InvalidInput
from workflows.models import Role
from workflows.research import ExportError, Vocabulary, case_records, date_range
from workflows.vocabulary import OVERSIGHT, role_list

api = APIBlueprint("research_api", __name__, url_prefix="/api/v1", tag="research")
pages = Blueprint("research_pages", __name__, template_folder="templates")
EXPORTERS = role_list(OVERSIGHT, {Role.RESEARCHER.value})


class ExportQuery(StrictSchema):
    from_ = Date(required=True, data_key="from", metadata={"description": "First day (UTC)"})
    to = Date(required=True, metadata={"description": "Last day, included (UTC)"})


def export_response(start: date, end: date) -> Response:
    """Check the range, log the export, and stream the package's zip."""
    try:
        first, after = date_range(start, end)
    except ExportError as exc:
        raise InvalidInput(str(exc), field="to") from None
    rt = runtime()
    session = db_session()
    with transaction(session):
        record_event(session, actor=actor_name(current_user()), action="research_export",
                     detail={"from": start.isoformat(), "to": end.isoformat()})
    vocab = Vocabulary.from_catalogs(rt.catalogs)
    k = rt.settings.statistics_k

    def chunks() -> Iterator[bytes]:
        # Its own session: the request's is closed before a streamed body is read.
        own = rt.session()
        try:
            yield from stream_package(lambda: case_records(own, first, after, vocab), vocab, k,
                                      start, end, utcnow())
        finally:
            own.close()

    name = f"hotline-research-{start.isoformat()}-{end.isoformat()}.zip"
    return Response(stream_with_context(chunks()), mimetype="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store",
    })


@api.get("/exports/research")
@api.auth_required(token_auth, roles=EXPORTERS)
@api.input(ExportQuery, location="query", arg_name="query")
@api.output(FileSchema(type="string", format="binary"), content_type="application/zip",
            description="A zip: datapackage.json, cases.csv, victims.csv, referrals.csv, "
                        "data-dictionary.csv, suppression.csv")
@api.doc(summary="De-identified research extract (a zipped Frictionless Data Package)",
         responses=[200, 401, 403, 422])
def research_export(query: dict[str, Any]) -> Any:
    return export_response(query["from_"], query["to"])


@pages.get("/research/")
@login_required(EXPORTERS)
def start() -> Any:
    """The researcher's start page: a range, and the download."""
    today = utcnow().date()
    return render_template("research/start.html", today=today,
                           first=date(today.year - 1, 1, 1), k=runtime().settings.statistics_k)


@pages.get("/research/export")
@login_required(EXPORTERS)
def export_download() -> Any:
    try:
        start_day = date.fromisoformat(request.args.get("from", ""))
        end_day = date.fromisoformat(request.args.get("to", ""))
    except ValueError:
        return render_template("research/start.html", today=utcnow().date(), first=None,
                               k=runtime().settings.statistics_k,
                               error="Give both dates as YYYY-MM-DD."), 400
    try:
        return export_response(start_day, end_day)
    except InvalidInput as exc:
        return render_template("research/start.html", today=end_day, first=start_day,
                               k=runtime().settings.statistics_k, error=exc.message), 400
