"""The supervisor's queues: filters, deadline-then-age order, keyset pages, overdue."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.factories import CaseFactory, ReferralFactory, bound_to
from workflows.db import utcnow


@pytest.fixture
def spread(app) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Seven cases: two late, four due later (two sharing a deadline), one closed."""
    now = utcnow()
    plan = [
        ("late2", "received", -2, "urgent"),
        ("late1", "screening", -1, "routine"),
        ("soon", "screening", 1, "urgent"),
        ("tie_a", "pending_approval", 5, "routine"),
        ("tie_b", "referred", 5, "routine"),
        ("later", "awaiting_info", 48, "routine"),
        ("closed", "closed", None, "routine"),
    ]
    cases = {}
    with app.extensions["runtime"].session() as session, bound_to(session):
        for name, state, hours, priority in plan:
            cases[name] = CaseFactory(
                state=state,
                priority=priority,
                deadline=now + timedelta(hours=hours) if hours is not None else None,
                created_at=now - timedelta(minutes=len(cases)),
            )
        ReferralFactory(case=cases["tie_b"], agency_code="HHS", state="sent")
        session.commit()
        return {name: case.id for name, case in cases.items()}


def _page(client, actor, **params):  # type: ignore[no-untyped-def]
    answer = client.get("/api/v1/cases", query_string=params, headers=actor.headers)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def test_sorted_by_deadline_then_age_in_keyset_pages(client, supervisor, spread) -> None:
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = _page(client, supervisor, **params)
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    by_id = {v: k for k, v in spread.items()}
    # tie_b was created after tie_a in the seed loop but with an older created_at.
    assert [by_id[i] for i in seen] == [
        "late2", "late1", "soon", "tie_b", "tie_a", "later", "closed"]
    assert pages == 4


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"overdue": "true"}, {"late2", "late1"}),
        ({"state": "screening"}, {"late1", "soon"}),
        ({"priority": "urgent"}, {"late2", "soon"}),
        ({"agency": "HHS"}, {"tie_b"}),
        ({"assignee": "none", "state": "closed"}, {"closed"}),
    ],
)
def test_filters(client, supervisor, spread, params, expected) -> None:
    by_id = {v: k for k, v in spread.items()}
    page = _page(client, supervisor, **params)
    assert {by_id[item["id"]] for item in page["items"]} == expected


def test_overdue_items_say_so(client, supervisor, spread) -> None:
    items = _page(client, supervisor, overdue="true")["items"]
    assert all(item["overdue"] for item in items)


def test_reference_and_assignee_filters(client, supervisor, operator, spread) -> None:
    case_id = spread["soon"]
    shown = client.get(f"/api/v1/cases/{case_id}", headers=supervisor.headers).get_json()
    ref = _page(client, supervisor, reference=shown["reference"].lower())
    assert [i["id"] for i in ref["items"]] == [case_id]
    assigned = client.post(f"/api/v1/cases/{case_id}/assign",
                           json={"assignee": operator.username, "version": shown["version"]},
                           headers=supervisor.headers)
    assert assigned.status_code == 200, assigned.get_json()
    assert assigned.get_json()["assignee"] == operator.username
    mine = _page(client, operator, assignee="me")
    assert [i["id"] for i in mine["items"]] == [case_id]
    stale = client.post(f"/api/v1/cases/{case_id}/assign",
                        json={"assignee": None, "version": shown["version"]},
                        headers=supervisor.headers)
    assert stale.status_code == 409


def test_operators_take_cases_only_for_themselves(client, operator, make_actor, spread) -> None:
    other = make_actor("operator")
    case_id = spread["soon"]
    version = client.get(f"/api/v1/cases/{case_id}", headers=operator.headers).get_json()[
        "version"]
    answer = client.post(f"/api/v1/cases/{case_id}/assign",
                         json={"assignee": other.username, "version": version},
                         headers=operator.headers)
    assert answer.status_code == 403


@pytest.mark.parametrize(
    ("params", "field"),
    [({"cursor": "garbage!"}, "cursor"), ({"state": "lost"}, "state.0"),
     ({"limit": 0}, "limit")],
)
def test_bad_queries_are_422(client, supervisor, params, field) -> None:
    answer = client.get("/api/v1/cases", query_string=params, headers=supervisor.headers)
    assert answer.status_code == 422
    assert answer.get_json()["field"] == field


def test_queue_counts_give_open_cases_by_state_and_the_late_count(app, spread) -> None:
    from intake.statistics import cases_by_state, late_counts

    with app.extensions["runtime"].session() as session:
        late_cases, _late_referrals = late_counts(session, utcnow())
        by_state = cases_by_state(session)
    assert late_cases == 2
    assert {state: n for state, n in by_state.items() if n and state != "closed"} == {
        "received": 1, "screening": 2, "pending_approval": 1, "referred": 1, "awaiting_info": 1
    }
