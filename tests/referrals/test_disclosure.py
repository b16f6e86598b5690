"""An agency sees a referral only once it was queued for it, and only the packet as it
was sent, never the live case (issue 11, item 1)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import Text, select, type_coerce

from intake.models import Signal
from referrals.embedded import run_embedded_once
from tests.factories import UserFactory
from tests.flows import screened_case
from tests.page_clients import PASSWORD, PageClient
from tests.referrals.casework import screen_and_approve, submit_tip
from tests.referrals.conftest import agency_env
from workflows.db import transaction
from workflows.lifecycle import fire_case_event
from workflows.models import Referral, ReferralPacket, User

SECRET_NARRATIVE = "A girl of 16 is kept at the blue house on Elm Street"


@pytest.fixture
def fbi_pages(app, make_actor) -> PageClient:  # type: ignore[no-untyped-def]
    """FBI's inbox, logged in as a browser would be."""
    actor = make_actor("agency", "FBI", password=PASSWORD)
    pages = PageClient(app.test_client())
    assert pages.login(actor.username).status_code == 302
    return pages


def _as(session: Any, role: str) -> User:
    return session.scalar(select(User).where(User.role == role)) or UserFactory.in_session(
        session, username=f"disclosure-{role}", role=role
    )


def withdrawn_before_queued(app: Any, how: str) -> tuple[int, int]:
    """A case whose FBI referral was withdrawn while pending; (case id, referral id)."""
    case_id = screened_case(app, SECRET_NARRATIVE)
    runtime = app.extensions["runtime"]
    with runtime.session() as session:
        with transaction(session):
            fire_case_event(session, case_id, "submit_for_approval", _as(session, "operator"),
                            version=None, catalogs=runtime.catalogs)
        [referral_id] = [r.id for r in session.scalars(
            select(Referral).where(Referral.case_id == case_id))]
        with transaction(session):
            if how == "reject":
                fire_case_event(session, case_id, "reject", _as(session, "supervisor"),
                                version=None, reason="not enough to go on",
                                catalogs=runtime.catalogs)
            elif how == "close":
                fire_case_event(session, case_id, "close", _as(session, "supervisor"),
                                version=None, data={"resolution_code": "duplicate"},
                                reason="a duplicate of an earlier case",
                                catalogs=runtime.catalogs)
            else:  # escalated: the pending ones are withdrawn, new ones queued at once
                fire_case_event(session, case_id, "escalate", _as(session, "operator"),
                                version=None, reason="she called again, in danger",
                                catalogs=runtime.catalogs)
        referral = session.get(Referral, referral_id)
        assert referral is not None and referral.state == "withdrawn"
    return case_id, referral_id


@pytest.mark.parametrize("how", ["reject", "close", "escalate"])
def test_a_referral_withdrawn_before_it_was_queued_is_not_found_anywhere(
    app, client, make_actor, fbi_pages, how
) -> None:
    _, referral_id = withdrawn_before_queued(app, how)
    fbi = make_actor("agency", "FBI")
    api = "/api/v1/agency/referrals"

    listed = [r["id"] for r in client.get(api, headers=fbi.headers).get_json()["items"]]
    filtered = client.get(f"{api}?state=withdrawn", headers=fbi.headers).get_json()["items"]
    shown = client.get(f"{api}/{referral_id}", headers=fbi.headers)
    missing = client.get(f"{api}/999999", headers=fbi.headers)
    answered = client.post(f"{api}/{referral_id}/events", json={"event": "acknowledge"},
                           headers=fbi.headers)

    assert referral_id not in listed
    assert filtered == []
    assert shown.status_code == missing.status_code == answered.status_code == 404
    assert shown.get_json()["error"] == f"no referral {referral_id}"
    for other in client.get(api, headers=fbi.headers).get_json()["items"]:
        detail = client.get(f"{api}/{other['id']}", headers=fbi.headers).get_json()
        # Nor does a later referral name it among the others on the case.
        assert {"agency": "FBI", "state": "withdrawn"} not in detail["other_agencies"]

    page = fbi_pages
    inbox = page.get("/agency/").get_data(as_text=True)
    assert f"/agency/referrals/{referral_id}" not in inbox
    assert page.get(f"/agency/referrals/{referral_id}").status_code == 404
    posted = page.submit("/agency/", f"/agency/referrals/{referral_id}/events",
                         {"event": "acknowledge"})
    assert posted.status_code == 404


def test_the_agency_reads_the_packet_as_sent_not_the_live_case(
    app, client, operator, supervisor, make_actor, agency, delivery_runtime, db_session,
    fbi_pages,
) -> None:
    case_id = submit_tip(client, SECRET_NARRATIVE, location="Elm Street")
    [referral_id] = screen_and_approve(app, case_id, operator, supervisor)
    run_embedded_once(delivery_runtime(env=agency_env(agency.url)))
    [delivered] = agency.packets.values()

    # The live case changes after the disclosure (an operator corrects the record).
    signal = db_session.scalar(select(Signal).where(Signal.case_id == case_id))
    signal.narrative = "LATER EDIT: the victim's new address is 12 Oak Lane"
    signal.location = "12 Oak Lane"
    db_session.commit()

    fbi = make_actor("agency", "FBI")
    shown = client.get(f"/api/v1/agency/referrals/{referral_id}", headers=fbi.headers).get_json()
    page = fbi_pages.get(f"/agency/referrals/{referral_id}")
    text = page.get_data(as_text=True)

    assert shown["packet"] == delivered  # the bytes the webhook carried, read back
    assert SECRET_NARRATIVE in shown["packet"]["summary"]
    assert "Oak Lane" not in json.dumps(shown)
    assert page.status_code == 200 and SECRET_NARRATIVE in text and "Oak Lane" not in text


def test_the_snapshot_is_encrypted_and_taken_once_per_version(
    app, client, operator, supervisor, agency, delivery_runtime, db_session
) -> None:
    agency.mode = "error"
    runtime = delivery_runtime(env=agency_env(agency.url), delivery_max_attempts=1)
    case_id = submit_tip(client, SECRET_NARRATIVE)
    [referral_id] = screen_and_approve(app, case_id, operator, supervisor)
    run_embedded_once(runtime)
    assert db_session.get(Referral, referral_id).state == "failed"
    signal = db_session.scalar(select(Signal).where(Signal.case_id == case_id))
    signal.narrative = "changed after the first try"
    db_session.commit()

    retried = client.post(f"/api/v1/cases/{case_id}/referrals/{referral_id}/events",
                          json={"event": "retry"}, headers=supervisor.headers)
    assert retried.status_code == 200
    agency.mode = "ok"
    run_embedded_once(runtime)

    rows = db_session.execute(
        select(ReferralPacket.version, type_coerce(ReferralPacket.body, Text))
        .where(ReferralPacket.referral_id == referral_id)
    ).all()
    assert [version for version, _ in rows] == [1]
    assert rows[0][1].startswith("enc1:") and "Elm Street" not in rows[0][1]
    [delivered] = agency.packets.values()
    assert SECRET_NARRATIVE in delivered["summary"]  # the retry sent the same version
