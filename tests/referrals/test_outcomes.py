"""Typed outcomes (issue 13): each kind with its statuses, date and amount, refused whole
when a field breaks its kind's rules or the agency does not record that kind."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from config.settings import Settings
from referrals.agencies import load_agencies
from tests.flows import accepted_referral
from workflows.catalog_files import CatalogError
from workflows.db import transaction, utcnow
from workflows.lifecycle import fire_referral_event
from workflows.models import AuditEvent, Case, Referral, User
from workflows.outcomes import OUTCOME_KINDS


def _post(client: Any, actor: Any, referral_id: int, outcome: dict[str, Any]) -> Any:
    return client.post(f"/api/v1/agency/referrals/{referral_id}/events",
                       json={"event": "record_outcome", "outcome": outcome},
                       headers=actor.headers)


# One row per kind: the agency that records it, a status, and an amount where money is.
EACH_KIND = [
    ("FBI", "investigation", "charged", None),
    ("ICE", "continued_presence", "granted", None),
    ("HHS", "certification_letter", "issued", None),
    ("HHS", "eligibility_letter", "issued", None),
    ("HHS", "interim_assistance", "granted", None),
    ("ICE", "t_visa_endorsement", "signed", None),
    ("FBI", "u_visa_certification", "certified", None),
    ("DOL_WHD", "back_wages", "assessed", 18250.5),
    ("FBI", "restitution", "ordered", 250000),
]


def test_every_kind_has_a_row_here() -> None:
    assert sorted(kind for _, kind, _, _ in EACH_KIND) == sorted(OUTCOME_KINDS)


@pytest.mark.parametrize(("agency", "kind", "status", "amount"), EACH_KIND)
def test_each_kind_is_recorded_with_its_status_date_and_amount(
    app, client, make_actor, db_session, agency, kind, status, amount
) -> None:
    referral_id = accepted_referral(app, agency)
    actor = make_actor("agency", agency)
    outcome = {"kind": kind, "status": status, "date": "2026-02-03"}
    if amount is not None:
        outcome["amount"] = amount

    answer = _post(client, actor, referral_id, outcome)

    assert answer.status_code == 200, answer.get_json()
    [recorded] = answer.get_json()["outcome"]["outcomes"]
    assert {k: recorded[k] for k in outcome} == outcome
    event = db_session.scalar(select(AuditEvent).where(
        AuditEvent.referral_id == referral_id, AuditEvent.action == "record_outcome"))
    assert event.detail == {"agency": agency, "kind": kind, "status": status}


def test_outcomes_accumulate_in_the_order_recorded(app, client, make_actor) -> None:
    referral_id = accepted_referral(app, "FBI")
    fbi = make_actor("agency", "FBI")
    for outcome in ({"kind": "investigation", "status": "opened", "date": "2026-01-10"},
                    {"kind": "restitution", "status": "ordered", "date": "2026-03-01",
                     "amount": 5000},
                    {"kind": "restitution", "status": "paid", "date": "2026-04-01",
                     "amount": 1200.456}):
        assert _post(client, fbi, referral_id, outcome).status_code == 200
    shown = client.get(f"/api/v1/agency/referrals/{referral_id}", headers=fbi.headers)
    stored = shown.get_json()["outcome"]["outcomes"]
    assert [(o["kind"], o["status"], o.get("amount")) for o in stored] == [
        ("investigation", "opened", None), ("restitution", "ordered", 5000.0),
        ("restitution", "paid", 1200.46)]


TOMORROW = (utcnow().date() + timedelta(days=1)).isoformat()
REFUSED = [
    # (agency, outcome, field at fault)
    ("FBI", {"kind": "certification_letter", "status": "issued", "date": "2026-01-02"},
     "outcome.kind"),  # HHS's kind, not FBI's
    ("HHS", {"kind": "continued_presence", "status": "granted", "date": "2026-01-02"},
     "outcome.kind"),
    ("FBI", {"kind": "parole", "status": "granted", "date": "2026-01-02"}, "outcome.kind"),
    ("ICE", {"kind": "continued_presence", "status": "signed", "date": "2026-01-02"},
     "outcome.status"),
    ("FBI", {"kind": "investigation", "status": "charged", "date": "2026-01-02",
             "amount": 10}, "outcome.amount"),
    ("FBI", {"kind": "restitution", "status": "ordered", "date": "2026-01-02",
             "amount": -1}, "outcome.amount"),
    ("FBI", {"kind": "restitution", "status": "ordered", "date": "2026-01-02"},
     "outcome.amount"),
    ("FBI", {"kind": "investigation", "status": "opened", "date": TOMORROW}, "outcome.date"),
    ("FBI", {"kind": "investigation", "status": "opened", "date": "2026-13-01"},
     "outcome.date"),
    ("FBI", {"kind": "investigation", "status": "opened", "date": "last week"},
     "outcome.date"),
    ("FBI", {"kind": "investigation", "status": "opened"}, "outcome.date"),
    ("FBI", {"kind": "investigation", "status": "opened", "date": "2026-01-02",
             "investigation_status": "open"}, "outcome.investigation_status"),
]


@pytest.mark.parametrize(("agency", "outcome", "field"), REFUSED)
def test_a_refused_outcome_names_the_field_and_stores_nothing(
    app, client, make_actor, db_session, agency, outcome, field
) -> None:
    referral_id = accepted_referral(app, agency)

    answer = _post(client, make_actor("agency", agency), referral_id, outcome)

    assert answer.status_code == 422, answer.get_json()
    assert answer.get_json()["field"] == field
    db_session.expire_all()
    assert db_session.get(Referral, referral_id).outcome is None
    assert db_session.scalar(select(AuditEvent.id).where(
        AuditEvent.referral_id == referral_id, AuditEvent.action == "record_outcome")) is None


def test_the_domain_checks_the_agency_too(app, db_session, catalogs) -> None:
    """Whatever calls the lifecycle (a job, a future page), the agency's kinds hold."""
    from workflows.errors import InvalidInput

    referral_id = accepted_referral(app, "HHS")
    hhs = db_session.scalar(select(User).where(User.agency_code == "HHS"))
    with pytest.raises(InvalidInput) as raised, transaction(db_session):
        fire_referral_event(db_session, referral_id, "record_outcome", hhs, catalogs=catalogs,
                            data={"outcome": {"kind": "restitution", "status": "paid",
                                              "date": "2026-01-02", "amount": 5}})
    assert raised.value.field == "outcome.kind" and "HHS" not in raised.value.message
    db_session.expire_all()
    assert db_session.get(Referral, referral_id).outcome is None


def test_a_visa_or_continued_presence_outcome_protects_the_case(
    app, client, make_actor, db_session
) -> None:
    referral_id = accepted_referral(app, "ICE")
    ice = make_actor("agency", "ICE")
    answer = _post(client, ice, referral_id,
                   {"kind": "continued_presence", "status": "requested", "date": "2026-01-02"})
    assert answer.status_code == 200
    db_session.expire_all()
    case = db_session.get(Case, db_session.get(Referral, referral_id).case_id)
    assert case.protected_immigration and case.protected_set_by == ice.username
    actions = db_session.scalars(select(AuditEvent.action).where(
        AuditEvent.case_id == case.id).order_by(AuditEvent.id)).all()
    assert actions[-2:] == ["record_outcome", "protect_immigration"]


def test_the_agency_page_has_a_form_per_kind_it_records(app, logged_in, db_session) -> None:
    referral_id = accepted_referral(app, "HHS")
    hhs = logged_in("agency", "HHS")
    url = f"/agency/referrals/{referral_id}"
    assert f'href="{url}#outcome">record an outcome' in hhs.get("/agency/").get_data(as_text=True)
    page = hhs.get(url).get_data(as_text=True)
    for kind in ("certification_letter", "eligibility_letter", "interim_assistance"):
        assert f'id="answer-record_outcome-{kind}"' in page
    assert "answer-record_outcome-restitution" not in page

    refused = hhs.submit(url, f"{url}/events", {"event": "record_outcome",
                                                "kind": "eligibility_letter",
                                                "status": "issued", "date": TOMORROW})
    db_session.expire_all()
    assert refused.status_code == 303 and db_session.get(Referral, referral_id).outcome is None
    assert "future" in hhs.get(url).get_data(as_text=True)

    done = hhs.submit(url, f"{url}/events", {"event": "record_outcome",
                                             "kind": "eligibility_letter", "status": "issued",
                                             "date": "2026-02-03", "amount": ""})
    assert done.status_code == 303
    db_session.expire_all()
    [entry] = db_session.get(Referral, referral_id).outcome["outcomes"]
    assert (entry["kind"], entry["status"], entry["date"]) == (
        "eligibility_letter", "issued", "2026-02-03")
    shown = hhs.get(url).get_data(as_text=True)
    assert 'id="outcomes-recorded"' in shown and "Eligibility letter (HHS, minor)" in shown


def test_an_agency_file_naming_an_unknown_outcome_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agencies.yaml"
    path.write_text("agencies:\n  - code: FBI\n    name: F\n    outcomes: [parole]\n")
    with pytest.raises(CatalogError) as raised:
        load_agencies(path, Settings())
    assert "line 2" in str(raised.value) and "outcomes" in str(raised.value)
