"""Access log: every view of a case's personal data by a person is recorded; supervisors read it."""

from __future__ import annotations

from workflows.audit import verify_chain


def _call(client, operator) -> int:  # type: ignore[no-untyped-def]
    answer = client.post(
        "/api/v1/calls",
        json={"caller_type": "victim", "narrative": "n", "caller_name": "Ana"},
        headers=operator.headers,
    )
    assert answer.status_code == 201, answer.get_json()
    return int(answer.get_json()["id"])


def _log(client, supervisor, case_id: int) -> list[dict]:  # type: ignore[no-untyped-def]
    answer = client.get(f"/api/v1/cases/{case_id}/access-log", headers=supervisor.headers)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["case_id"] == case_id
    return list(answer.get_json()["views"])


def test_an_api_view_is_in_the_case_access_log(client, operator, supervisor, db_session) -> None:
    case_id = _call(client, operator)
    assert _log(client, supervisor, case_id) == []  # logging a call is not a view
    assert client.get(f"/api/v1/cases/{case_id}", headers=operator.headers).status_code == 200
    assert client.get(f"/api/v1/cases/{case_id}", headers=supervisor.headers).status_code == 200
    views = _log(client, supervisor, case_id)
    assert [(v["actor"], v["role"], v["via"], v["what"]) for v in views] == [
        (operator.username, "operator", "api", "case"),
        (supervisor.username, "supervisor", "api", "case"),
    ]
    assert all(v["at"] for v in views)
    # Reading the access log is not itself a view of personal data.
    assert len(_log(client, supervisor, case_id)) == 2
    assert verify_chain(db_session).ok


def test_a_page_view_is_in_the_case_access_log(
    app, client, operator, supervisor, make_actor
) -> None:
    from tests.page_clients import PASSWORD, PageClient

    case_id = _call(client, operator)
    person = make_actor("operator", password=PASSWORD)
    browser = PageClient(app.test_client())
    assert browser.login(person.username).status_code == 302
    assert browser.get(f"/cases/{case_id}").status_code == 200
    views = _log(client, supervisor, case_id)
    assert [(v["actor"], v["via"]) for v in views] == [(person.username, "page")]


def test_only_supervisors_and_admins_read_the_access_log(client, operator, make_actor) -> None:
    case_id = _call(client, operator)
    url = f"/api/v1/cases/{case_id}/access-log"
    assert client.get(url).status_code == 401
    assert client.get(url, headers=operator.headers).status_code == 403
    assert client.get(url, headers=make_actor("agency", "FBI").headers).status_code == 404
    assert client.get(url, headers=make_actor("admin").headers).status_code == 200
    missing = client.get("/api/v1/cases/999999/access-log", headers=make_actor("admin").headers)
    assert missing.status_code == 404


def test_an_admin_revokes_a_token_through_the_api(client, make_actor, operator) -> None:
    admin = make_actor("admin")
    assert client.get("/api/v1/cases", headers=operator.headers).status_code == 200
    prefix = operator.token[:10]
    assert client.delete(f"/api/v1/tokens/{prefix}", headers=operator.headers).status_code == 403
    answer = client.delete(f"/api/v1/tokens/{prefix}", headers=admin.headers)
    assert answer.status_code == 200 and answer.get_json() == {"revoked": 1}
    assert client.get("/api/v1/cases", headers=operator.headers).status_code == 401
    again = client.delete(f"/api/v1/tokens/{prefix}", headers=admin.headers)
    assert again.status_code == 404


def test_an_answer_that_shows_the_case_after_a_change_is_logged(
    client, operator, supervisor
) -> None:
    case_id = _call(client, operator)
    version = client.get(f"/api/v1/cases/{case_id}", headers=operator.headers).get_json()["version"]
    fired = client.post(
        f"/api/v1/cases/{case_id}/events",
        json={"event": "start_screening", "version": version},
        headers=operator.headers,
    )
    assert fired.status_code == 200, fired.get_json()
    assert fired.get_json()["signals"][0]["caller_name"] == "Ana"
    views = _log(client, supervisor, case_id)
    assert [(v["actor"], v["via"]) for v in views] == [(operator.username, "api")] * 2
