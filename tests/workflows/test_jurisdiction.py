"""Jurisdiction: the incident's state is a screening fact, routes to state agencies, counts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from workflows.catalog_files import CatalogError
from workflows.jurisdiction import cases_by_incident_state
from workflows.routing import load_routing

CHILD = {
    "facts": {"victim_age": 15, "commercial_sex": True, "trafficking_type": "sex"},
    "indicators": ["under_18_commercial_sex"],
}


@pytest.fixture
def with_texas(app, monkeypatch):  # type: ignore[no-untyped-def]
    """The optional Texas child-protection agency configured (an e-mail channel set)."""
    catalogs = app.extensions["runtime"].catalogs
    agencies = dict(catalogs["agencies"])
    tx = agencies["TX_DFPS"]
    agencies["TX_DFPS"] = dataclasses.replace(
        tx, addresses={**tx.addresses, "email": "intake@example.gov"})
    monkeypatch.setitem(catalogs, "agencies", agencies)


def _agencies(result) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(r["agency"] for r in result["recommended_referrals"])


def test_a_state_agency_gets_referrals_for_its_state(cases, operator, with_texas) -> None:
    texas = cases.call(operator)
    body = {**CHILD, "facts": {**CHILD["facts"], "state": "TX", "county": "Harris"}}
    result = cases.screen(operator, texas["id"], body)
    assert _agencies(result) == ["FBI", "TX_DFPS"]
    tx = next(r for r in result["recommended_referrals"] if r["agency"] == "TX_DFPS")
    assert tx["rule"] == "texas_child_protection" and tx["mandatory"] is True
    assert cases.show(operator, texas["id"])["incident_state"] == "TX"
    elsewhere = cases.call(operator)
    body = {**CHILD, "facts": {**CHILD["facts"], "state": "OK"}}
    assert _agencies(cases.screen(operator, elsewhere["id"], body)) == ["FBI"]


def test_the_case_files_location_supplies_the_state(client, cases, operator, with_texas) -> None:
    case = cases.call(operator, locations=[{"city": "El Paso", "county": "El Paso",
                                            "state": "TX"}])
    result = cases.screen(operator, case["id"], CHILD)
    assert _agencies(result) == ["FBI", "TX_DFPS"]
    screening = cases.show(operator, case["id"])["screening"]
    assert screening["facts"]["state"] == "TX" and screening["facts"]["county"] == "El Paso"


def test_an_unconfigured_state_agency_is_skipped(cases, operator) -> None:
    case = cases.call(operator)
    body = {**CHILD, "facts": {**CHILD["facts"], "state": "TX"}}
    assert _agencies(cases.screen(operator, case["id"], body)) == ["FBI"]


def test_a_state_that_is_no_state_is_422(cases, operator) -> None:
    case = cases.call(operator)
    body = {**CHILD, "facts": {**CHILD["facts"], "state": "Texas"}}
    answer = cases.screen(operator, case["id"], body, status=422)
    assert "state" in str(answer)


def test_a_routing_rule_naming_an_unknown_state_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(
        "rules:\n  - name: x\n    when: {state: [ZZ]}\n    refer: [FBI]\n    basis: mandatory\n"
        "    deadline: 24h\n    reason: r\n"
    )
    with pytest.raises(CatalogError, match="ZZ"):
        load_routing(path)


def test_statistics_break_down_by_incident_state(client, cases, operator, supervisor,
                                                 db_session) -> None:
    for state in ("TX", "TX", "CA", None):
        locations = [{"state": state}] if state else []
        cases.call(operator, locations=locations)
    merged, survivor = cases.call(operator, locations=[{"state": "CA"}]), cases.call(operator)
    answer = client.post(f"/api/v1/cases/{merged['id']}/merge", json={"into": survivor["id"]},
                         headers=supervisor.headers)
    assert answer.status_code == 200
    assert cases_by_incident_state(db_session) == {"CA": 2, "TX": 2, "unknown": 1}

