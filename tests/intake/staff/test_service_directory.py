"""The service directory (issue 13): an Open Referral HSDS data package imports, round-trips
and re-imports as a no-op; a malformed one is refused naming file, row and column; staff
search by type, language, state and distance; a service referral needs the services
consent and carries only what it covers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from workflows.db import transaction
from workflows.hsds import HsdsError, import_package, read_package
from workflows.outbox import OutboxMessage
from workflows.providers import ServiceProvider, ServiceReferral

SAMPLE = Path(__file__).resolve().parents[2] / "fixtures" / "hsds"


def _import(runner, path: Path):
    return runner.invoke(args=["services", "import", str(path)])


def test_the_sample_package_imports_round_trips_and_reimports_as_a_no_op(
    app, runner, db_session
) -> None:
    first = _import(runner, SAMPLE)
    assert first.exit_code == 0, first.output
    assert "3 created, 0 updated, 0 unchanged" in first.output
    shelter = db_session.scalar(
        select(ServiceProvider).where(ServiceProvider.hsds_id == "svc-shelter-1")
    )
    assert (
        shelter.organization == "Casa Segura" and shelter.email == "shelter@casasegura.example.org"
    )
    assert shelter.service_types == ["dv", "shelter"] and shelter.languages == ["en", "es"]
    assert (shelter.city, shelter.state) == ("San Antonio", "TX")
    assert round(shelter.latitude, 4) == 29.4241
    # Round trip: what is stored is what the package says, field by field.
    stored = {p.hsds_id: p.as_json() for p in db_session.scalars(select(ServiceProvider))}
    for entry in read_package(SAMPLE):
        assert {k: stored[entry["hsds_id"]][k] for k in entry} == entry
    again = _import(runner, SAMPLE)
    assert "0 created, 0 updated, 3 unchanged" in again.output
    db_session.expire_all()
    assert db_session.scalar(select(func.count()).select_from(ServiceProvider)) == 3


def test_a_changed_package_updates_and_a_malformed_one_is_refused_naming_the_row(
    app, runner, db_session, tmp_path
) -> None:
    package = tmp_path / "hsds"
    shutil.copytree(SAMPLE, package)
    _import(runner, package)
    services = package / "services.csv"
    services.write_text(services.read_text().replace("24-hour emergency", "Round-the-clock"))
    changed = _import(runner, package)
    assert (
        "0 created, 1 updated, 2 unchanged" in changed.output and "svc-shelter-1" in changed.output
    )

    bad = services.read_text().replace("cases@borderlegal.example.org", "not-an-email")
    services.write_text(bad)
    refused = _import(runner, package)
    assert refused.exit_code != 0
    assert "services.csv row 3, column 'email'" in refused.output
    (package / "locations.csv").write_text(
        (package / "locations.csv").read_text().replace("31.7619", "131.7")
    )
    with pytest.raises(HsdsError, match=r"locations\.csv row 3, column 'latitude'"):
        read_package(package)
    (package / "organizations.csv").unlink()
    with pytest.raises(HsdsError, match=r"organizations\.csv: missing"):
        read_package(package)
    db_session.expire_all()
    legal = db_session.scalar(
        select(ServiceProvider).where(ServiceProvider.hsds_id == "svc-legal-1")
    )
    assert legal.email == "cases@borderlegal.example.org"  # nothing changed by the refusals


def test_staff_search_the_directory(app, runner, client, operator, make_actor) -> None:
    _import(runner, SAMPLE)

    def names(query: str) -> list[str]:
        answer = client.get(f"/api/v1/services{query}", headers=operator.headers)
        assert answer.status_code == 200, answer.get_json()
        return [s["name"] for s in answer.get_json()["items"]]

    assert names("?type=legal") == ["T-visa and labor claims"]
    assert names("?type=shelter&lang=es") == ["Casa Segura Emergency Shelter"]
    assert len(names("?state=tx")) == 3 and names("?state=CA") == []
    near_houston = client.get("/api/v1/services?near=29.76,-95.37", headers=operator.headers)
    items = near_houston.get_json()["items"]
    assert items[0]["name"] == "Youth Harbor Drop-in" and items[0]["distance_km"] < 5
    assert [i["distance_km"] for i in items] == sorted(i["distance_km"] for i in items)
    for bad in ("?type=spa", "?near=95,-200x", "?near=99,10", "?state=Texas", "?lang=english"):
        assert client.get(f"/api/v1/services{bad}", headers=operator.headers).status_code == 422
    agency = make_actor("agency", "FBI")
    assert client.get("/api/v1/services", headers=agency.headers).status_code == 403


def _tip_with_consent(client, operator, services: bool | None) -> int:
    tip = client.post(
        "/api/v1/tips",
        json={"narrative": "She sleeps at the restaurant", "location": "Pine St, San Antonio"},
    ).get_json()
    case = client.get(
        f"/api/v1/cases?reference={tip['reference']}", headers=operator.headers
    ).get_json()
    case_id = next(c["id"] for c in case["items"] if c["reference"] == tip["reference"])
    screened = client.put(
        f"/api/v1/cases/{case_id}/screening",
        headers=operator.headers,
        json={
            "facts": {"caller_type": "victim"},
            "indicators": [],
            "consent": {"services": services, "law_enforcement": False, "given_by": "victim"},
        },
    )
    assert screened.status_code == 200, screened.get_json()
    return case_id


def test_a_service_referral_needs_the_services_consent(
    app, runner, client, operator, db_session
) -> None:
    _import(runner, SAMPLE)
    shelter_id = db_session.scalar(
        select(ServiceProvider.id).where(ServiceProvider.hsds_id == "svc-shelter-1")
    )
    refused = _tip_with_consent(client, operator, services=False)
    answer = client.post(
        f"/api/v1/cases/{refused}/service-referrals",
        headers=operator.headers,
        json={"service_id": shelter_id, "reason": "needs a bed tonight"},
    )
    assert answer.status_code == 409 and answer.get_json()["field"] == "consent.services"

    case_id = _tip_with_consent(client, operator, services=True)
    made = client.post(
        f"/api/v1/cases/{case_id}/service-referrals",
        headers=operator.headers,
        json={"service_id": shelter_id, "reason": "needs a bed tonight"},
    )
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert body["state"] == "queued" and body["legal_basis"]["scope"] == "services"
    assert body["legal_basis"]["given_by"] == "victim"
    listed = client.get(f"/api/v1/cases/{case_id}/service-referrals", headers=operator.headers)
    assert [r["id"] for r in listed.get_json()["items"]] == [body["id"]]
    for bad in (
        {"service_id": "1", "reason": "x"},
        {"service_id": shelter_id},
        {"service_id": 99999, "reason": "x"},
        {"service_id": 2**31, "reason": "x"},  # past the database's integer: was a 500
        {"service_id": 0, "reason": "x"},
        {"service_id": shelter_id, "reason": "\x00"},
    ):
        status = client.post(
            f"/api/v1/cases/{case_id}/service-referrals", headers=operator.headers, json=bad
        ).status_code
        assert status in (404, 422), bad
    db_session.expire_all()
    assert db_session.scalar(select(func.count()).select_from(ServiceReferral)) == 1
    notify = db_session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "notify")).all()
    assert [
        m.payload["service_referral_id"]
        for m in notify
        if m.payload.get("kind") == "service_referral"
    ] == [body["id"]]


def test_import_is_all_or_nothing(app, db_session, tmp_path) -> None:
    package = tmp_path / "hsds"
    shutil.copytree(SAMPLE, package)
    attributes = package / "attributes.csv"
    attributes.write_text(attributes.read_text() + "attr-9,svc-youth-1,term-404,,service,,\n")
    with pytest.raises(HsdsError, match=r"attributes\.csv row 8, column 'taxonomy_term_id'"):
        with transaction(db_session):
            import_package(db_session, package)
    assert db_session.scalar(select(func.count()).select_from(ServiceProvider)) == 0
