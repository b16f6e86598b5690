"""JSON API for tipsters: web tips and the anonymous follow-up (staff: intake.staff)."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from sqlalchemy.orm import Session

from config.database import db_session
from config.security import open_tip_throttled
from intake import schemas, services
from intake.outage import commit_or_spool
from intake.passphrase import new_passphrase
from intake.replay import spool_web_tip
from workflows.cases import new_reference
from workflows.db import transaction

api = APIBlueprint("intake_api", __name__, url_prefix="/api/v1", tag="intake")

@api.post("/tips")
@api.input(schemas.TipIn, arg_name="data")
@api.output(schemas.TipCreated, status_code=201)
@api.doc(summary="Submit a tip (anonymous by default)", responses=[201, 413, 422, 429])
def submit_tip(data: dict[str, Any]) -> Any:
    # Chosen before the insert, so a tip spooled during an outage (or whose commit was
    # lost with its connection) is replayed under the reference its tipster was given.
    reference, passphrase = new_reference(), new_passphrase(language=data.get("language") or "en")

    def work(session: Session) -> str:
        services.submit_tip(session, data, reference=reference, passphrase=passphrase)
        return reference

    commit_or_spool(db_session(), work, lambda spool: spool_web_tip(spool, data, reference,
                                                                    passphrase))
    # Committed (or spooled, fsynced) above: only now does the tipster get a reference.
    return {"reference": reference, "passphrase": passphrase}


@api.get("/tips/<string:reference>")
@api.input(schemas.PassphraseHeader, location="headers", arg_name="headers")
@api.output(schemas.TipStatusOut)
@api.doc(summary="Read a tip's status and the hotline's replies", responses=[200, 404, 422, 429])
def read_tip(reference: str, headers: dict[str, Any]) -> Any:
    session = db_session()
    case = open_tip_throttled(session, reference, headers["x_tip_passphrase"])
    return {
        "reference": case.reference,
        "status": services.public_status(case),
        "created_at": case.created_at,
        "messages": services.tip_messages(session, case),
    }


@api.post("/tips/<string:reference>/messages")
@api.input(schemas.PassphraseHeader, location="headers", arg_name="headers")
@api.input(schemas.TipMessageIn, arg_name="data")
@api.output(schemas.TipMessageOut, status_code=201)
@api.doc(summary="Add information to a tip", responses=[201, 404, 422, 429])
def add_tip_message(reference: str, headers: dict[str, Any], data: dict[str, Any]) -> Any:
    session = db_session()
    with transaction(session):
        case = open_tip_throttled(session, reference, headers["x_tip_passphrase"])
        message = services.add_tip_message(
            session, case, data["body"], direction="in", author="tipster"
        )
    return message
