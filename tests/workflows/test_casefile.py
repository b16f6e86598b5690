"""The case file: victims, subjects, locations and notes, each change audited without values."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from workflows.audit import verify_chain
from workflows.models import AuditEvent, CaseIdentifier, Subject

PHONE = "+1 214 555 0134"


def _add(client, actor, case_id, item, body, status=201):  # type: ignore[no-untyped-def]
    answer = client.post(f"/api/v1/cases/{case_id}/{item}", json=body, headers=actor.headers)
    assert answer.status_code == status, answer.get_json()
    return answer.get_json()


def _patch(client, actor, case_id, item, item_id, body, status=200):  # type: ignore[no-untyped-def]
    answer = client.patch(
        f"/api/v1/cases/{case_id}/{item}/{item_id}", json=body, headers=actor.headers
    )
    assert answer.status_code == status, answer.get_json()
    return answer.get_json()


def test_operator_adds_victim_subject_location_and_note(client, cases, operator) -> None:
    case = cases.call(operator)
    victim = _add(client, operator, case["id"], "victims",
                  {"age_min": 15, "age_max": 17, "minor": True, "language": "es",
                   "needs": "shelter"})
    subject = _add(client, operator, case["id"], "subjects", {"kind": "phone", "value": PHONE})
    handle = _add(client, operator, case["id"], "subjects",
                  {"kind": "handle", "value": "@SunriseGirls", "platform": "instagram"})
    place = _add(client, operator, case["id"], "locations",
                 {"address": "123 North Main Street", "city": "Dallas", "county": "Dallas",
                  "state": "TX", "zip": "75201", "tribal_land": False})
    note = _add(client, operator, case["id"], "notes", {"body": "caller will ring back"})
    assert victim["minor"] is True and victim["created_by"] == operator.username
    assert subject["value"] == PHONE and handle["platform"] == "instagram"
    assert place["state"] == "TX" and note["internal"] is True
    assert note["author"] == operator.username
    shown = cases.show(operator, case["id"])
    assert [v["id"] for v in shown["victims"]] == [victim["id"]]
    assert [s["kind"] for s in shown["subjects"]] == ["phone", "handle"]
    assert shown["locations"][0]["city"] == "Dallas"
    assert shown["notes"][0]["body"] == "caller will ring back"
    assert shown["incident_state"] == "TX"
    assert shown["related"] == []
    assert {"victims", "subjects", "locations", "notes", "signals", "related"} <= set(shown)


def test_an_edit_is_audited_by_field_names_never_values(
    client, cases, operator, db_session
) -> None:
    case = cases.call(operator)
    subject = _add(client, operator, case["id"], "subjects", {"kind": "phone", "value": PHONE})
    edited = _patch(client, operator, case["id"], "subjects", subject["id"],
                    {"value": "(469) 555-0199", "description": "the driver's phone"})
    assert edited["value"] == "(469) 555-0199"
    events = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action.like("casefile_%")).order_by(AuditEvent.id)
    ).all()
    assert [e.action for e in events] == ["casefile_add", "casefile_edit"]
    assert events[1].actor == operator.username
    assert events[1].detail == {"item": "subject", "item_id": subject["id"],
                                "fields": ["description", "value"]}
    logged = json.dumps([[e.detail, e.reason] for e in events])
    for value in ("214", "555", "0134", "469", "driver"):
        assert value not in logged


def test_operators_edit_only_what_they_entered_supervisors_anything(
    client, cases, operator, make_actor, supervisor
) -> None:
    other = make_actor("operator")
    case = cases.call(operator)
    victim = _add(client, operator, case["id"], "victims", {"age": 30})
    _patch(client, other, case["id"], "victims", victim["id"], {"age": 31}, status=403)
    assert _patch(client, supervisor, case["id"], "victims", victim["id"], {"age": 32})["age"] == 32


def test_only_supervisors_delete_and_the_deletion_is_audited(
    client, cases, operator, supervisor, db_session
) -> None:
    case = cases.call(operator)
    subject = _add(client, operator, case["id"], "subjects", {"kind": "phone", "value": PHONE})
    url = f"/api/v1/cases/{case['id']}/subjects/{subject['id']}"
    assert client.delete(url, headers=operator.headers).status_code == 403
    assert client.delete(url, headers=supervisor.headers).status_code == 204
    assert db_session.get(Subject, subject["id"]) is None
    assert db_session.scalar(select(func.count()).select_from(CaseIdentifier)) == 0
    event = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "casefile_delete")
    ).one()
    assert event.detail == {"item": "subject", "item_id": subject["id"], "kind": "phone"}
    assert client.delete(url, headers=supervisor.headers).status_code == 404
    assert verify_chain(db_session).ok


@pytest.mark.parametrize(
    ("item", "body", "field"),
    [
        ("subjects", {"kind": "phone", "value": "not a number"}, "value"),
        ("subjects", {"kind": "starship", "value": "x"}, "kind"),
        ("subjects", {"kind": "phone", "value": PHONE, "platform": "x"}, "platform"),
        ("subjects", {"kind": "vehicle", "value": "ABC 123", "plate_state": "ZZ"}, "plate_state"),
        ("subjects", {"kind": "email", "value": "a" * 600}, "value"),
        ("subjects", {"kind": "handle", "value": "bad\x00handle"}, "value"),
        ("victims", {"age": 17, "minor": False}, "minor"),
        ("victims", {"age_min": 20, "age_max": 10}, "age_min"),
        ("victims", {"age": "16"}, "age"),
        ("locations", {"state": "Texas"}, "state"),
        ("locations", {"tribal_land": True}, None),
        ("notes", {"body": ""}, "body"),
    ],
)
def test_bad_items_are_a_clear_422_and_change_nothing(
    client, cases, operator, db_session, item, body, field
) -> None:
    case = cases.call(operator)
    before = db_session.scalar(select(func.count()).select_from(AuditEvent))
    answer = _add(client, operator, case["id"], item, body, status=422)
    assert "error" in answer or "message" in answer or "detail" in answer
    if field:
        assert field in json.dumps(answer)
    assert db_session.scalar(select(func.count()).select_from(AuditEvent)) == before
    assert cases.show(operator, case["id"])[item] == []


def test_agencies_get_404_on_the_case_file(client, cases, operator, make_actor) -> None:
    case = cases.call(operator)
    agency = make_actor("agency", "FBI")
    for method, url, body in (
        ("post", f"/api/v1/cases/{case['id']}/notes", {"body": "x"}),
        ("patch", f"/api/v1/cases/{case['id']}/notes/1", {"body": "x"}),
        ("delete", f"/api/v1/cases/{case['id']}/notes/1", None),
        ("get", "/api/v1/search?phone=2145550134", None),
        ("post", f"/api/v1/cases/{case['id']}/merge", {"into": case["id"]}),
    ):
        answer = getattr(client, method)(url, json=body, headers=agency.headers)
        assert answer.status_code == 404, (method, url, answer.get_json())


def test_an_item_of_another_case_is_404(client, cases, operator) -> None:
    first, second = cases.call(operator), cases.call(operator)
    note = _add(client, operator, first["id"], "notes", {"body": "first"})
    _patch(client, operator, second["id"], "notes", note["id"], {"body": "moved?"}, status=404)


def test_the_call_form_adds_victims_subjects_and_a_location_in_one_submit(
    cases, operator
) -> None:
    case = cases.call(
        operator,
        victims=[{"age": 16, "minor": True}],
        subjects=[{"kind": "vehicle", "value": "abc 1234", "plate_state": "TX"},
                  {"kind": "business", "value": "Sunrise Spa, LLC"}],
        locations=[{"city": "Houston", "state": "TX"}],
    )
    assert [v["age"] for v in case["victims"]] == [16]
    assert [s["kind"] for s in case["subjects"]] == ["vehicle", "business"]
    assert case["locations"][0]["city"] == "Houston" and case["incident_state"] == "TX"


def test_a_bad_item_in_the_call_form_stores_no_call(client, operator, db_session) -> None:
    from workflows.models import Case

    body = {"caller_type": "victim", "narrative": "n",
            "subjects": [{"kind": "phone", "value": "nonsense"}]}
    answer = client.post("/api/v1/calls", json=body, headers=operator.headers)
    assert answer.status_code == 422
    assert db_session.scalar(select(func.count()).select_from(Case)) == 0
