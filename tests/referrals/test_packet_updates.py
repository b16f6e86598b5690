"""Packet updates and consent withdrawal (issue 13): new information after a referral
was sent goes out as the next packet_version once staff confirm, to the agencies whose
basis covers it; a withdrawn consent reaches the agencies that held what it covered.

Run by the embedded relay (the same jobs as the RQ worker, in-process): quick. The RQ
worker itself carries one of each in tests/referrals/test_worker_delivery.py.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from referrals.embedded import run_embedded_once
from tests.referrals.casework import (
    FOLLOW_UP,
    TWO_BASES,
    by_agency,
    case_json,
    follow_up,
    screen_and_approve,
    submit_tip,
)
from tests.referrals.conftest import AgencyServer, agency_env
from workflows.db import transaction, utcnow
from workflows.models import Case
from workflows.outbox import OutboxMessage


def packet_outbox(db_session: Any) -> list[OutboxMessage]:
    db_session.expire_all()
    return list(db_session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "deliver_packet")
    ))


def two_agencies(delivery_runtime: Any, agency: AgencyServer) -> tuple[Any, AgencyServer, Any]:
    """FBI at the ``agency`` server, ICE at one more; returns (runtime, ice, its server)."""
    ice = AgencyServer()
    server = ice.start()
    runtime = delivery_runtime(env={**agency_env(agency.url), **agency_env(ice.url, "ICE")})
    return runtime, ice, server


def test_follow_up_goes_out_as_version_2_once_staff_confirm_and_a_retry_sends_it_once(
    app, client, operator, supervisor, make_actor, agency, delivery_runtime, db_session
) -> None:
    runtime = delivery_runtime(env=agency_env(agency.url))
    case_id = submit_tip(client)
    [referral_id] = screen_and_approve(app, case_id, operator, supervisor)
    run_embedded_once(runtime)
    [first_key] = agency.packets
    assert agency.packets[first_key]["packet_version"] == 1
    assert case_json(client, operator, case_id)["packet_updates"] == []

    follow_up(app, case_id)
    [offer] = case_json(client, operator, case_id)["packet_updates"]
    assert offer["referral_id"] == referral_id and offer["agency"] == "FBI"
    assert offer["changed"] == ["follow_ups"] and len(offer["digest"]) == 64
    url = f"/api/v1/cases/{case_id}/referrals/{referral_id}/packet-update"
    stale = client.post(url, json={"decision": "send", "digest": "0" * 64},
                        headers=operator.headers)
    assert stale.status_code == 409 and stale.get_json()["field"] == "digest"
    assert client.post(url, json={"decision": "later", "digest": offer["digest"]},
                       headers=operator.headers).status_code == 422
    assert packet_outbox(db_session) == []

    sent = client.post(url, json={"decision": "send", "digest": offer["digest"]},
                       headers=operator.headers)
    assert sent.status_code == 200, sent.get_json()
    assert sent.get_json()["packet_updates"] == []
    [message] = packet_outbox(db_session)  # committed with the confirmation

    agency.mode = "error"  # the first try fails: the retry carries the same key
    run_embedded_once(runtime)
    agency.mode = "ok"
    db_session.execute(update(OutboxMessage).where(OutboxMessage.id == message.id)
                       .values(available_at=utcnow() - timedelta(seconds=1)))
    db_session.commit()
    run_embedded_once(runtime)

    update_key = f"{first_key}-v2"
    assert set(agency.packets) == {first_key, update_key}
    tries = [r for r in agency.requests if r["key"] == update_key]
    assert len(tries) == 2 and all(r["valid"] for r in agency.requests)
    second = agency.packets[update_key]
    assert second["packet_version"] == 2 and second["schema_version"] == "1.0"
    assert second["packet_type"] == "update" and second["idempotency_key"] == update_key
    assert [f["text"] for f in second["follow_ups"]] == [FOLLOW_UP]

    # The job runs again (a lease ran out, a worker redid it): nothing more is sent.
    db_session.execute(update(OutboxMessage).where(OutboxMessage.id == message.id)
                       .values(done_at=None, lease_until=None, available_at=utcnow()))
    db_session.commit()
    run_embedded_once(runtime)
    assert len(agency.requests) == 3

    fbi = make_actor("agency", "FBI")
    shown = client.get(f"/api/v1/agency/referrals/{referral_id}", headers=fbi.headers)
    assert shown.get_json()["packet_version"] == 2
    assert shown.get_json()["packet"]["follow_ups"][0]["text"] == FOLLOW_UP
    listed = client.get("/api/v1/agency/referrals", headers=fbi.headers).get_json()
    assert listed["items"][0]["packet_version"] == 2


def test_an_agency_whose_consent_lapsed_is_offered_no_update(
    app, client, operator, supervisor, agency, delivery_runtime, db_session
) -> None:
    runtime, ice, server = two_agencies(delivery_runtime, agency)
    try:
        case_id = submit_tip(client)
        screen_and_approve(app, case_id, operator, supervisor, TWO_BASES)
        run_embedded_once(runtime)
        ids = by_agency(app, case_id)
        assert len(agency.packets) == 1 and len(ice.packets) == 1
        with transaction(db_session):  # the victim's consent ran out
            case = db_session.get(Case, case_id)
            screening = dict(case.screening)
            screening["consent"] = {
                **screening["consent"],
                "law_enforcement": {**screening["consent"]["law_enforcement"],
                                    "expires_at": (utcnow() - timedelta(days=1)).isoformat()},
            }
            case.screening = screening

        follow_up(app, case_id)
        offers = case_json(client, operator, case_id)["packet_updates"]
        assert [(o["agency"], o["referral_id"]) for o in offers] == [("FBI", ids["FBI"])]
    finally:
        server.shutdown()
        server.server_close()


def test_withdrawn_consent_reaches_consent_holders_only_and_their_view_loses_it(
    app, client, operator, supervisor, make_actor, agency, delivery_runtime, person, pages
) -> None:
    runtime, ice, server = two_agencies(delivery_runtime, agency)
    try:
        case_id = submit_tip(client)
        screen_and_approve(app, case_id, operator, supervisor, TWO_BASES)
        run_embedded_once(runtime)
        ids = by_agency(app, case_id)
        ice_user = make_actor("agency", "ICE")
        ice_url = f"/api/v1/agency/referrals/{ids['ICE']}"
        before = client.get(ice_url, headers=ice_user.headers).get_json()["packet"]
        assert "motel" in before["summary"]

        url = f"/api/v1/cases/{case_id}/consent/withdraw"
        answer = client.post(url, json={"scope": "law_enforcement", "reason": "asked by phone"},
                             headers=operator.headers)
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["screening"]["consent"]["law_enforcement"]["given"] is False
        again = client.post(url, json={"scope": "law_enforcement"}, headers=operator.headers)
        assert again.status_code == 409  # nothing left to withdraw
        assert client.post(url, json={"scope": "everything"},
                           headers=operator.headers).status_code == 422
        run_embedded_once(runtime)
        run_embedded_once(runtime)

        assert len(agency.packets) == 1  # FBI's mandatory basis covers all it holds
        [notice] = [p for k, p in ice.packets.items() if k.endswith("-v2")]
        assert all(r["valid"] for r in ice.requests) and len(ice.requests) == 2
        assert notice["packet_type"] == "consent_withdrawn" and notice["packet_version"] == 2
        assert notice["consent_withdrawn"]["scope"] == "law_enforcement"
        assert notice["consent_withdrawn"]["basis_ended"] is True
        assert "summary" not in notice and "people" not in notice
        assert notice["case_reference"] == before["case_reference"]

        shown = client.get(ice_url, headers=ice_user.headers).get_json()
        assert shown["packet_version"] == 2
        text = json.dumps(shown["packet"])
        assert "motel" not in text and "summary" not in shown["packet"]
        pages.login(person("agency", "ICE").username)
        page = pages.get(f"/agency/referrals/{ids['ICE']}").get_data(as_text=True)
        assert 'id="consent-withdrawn"' in page and "motel" not in page
        assert '<span class="count" id="packet-version">2</span>' in page
        inbox = pages.get("/agency/").get_data(as_text=True)
        assert '<td class="packet-version">2</td>' in inbox
        fbi = make_actor("agency", "FBI")
        kept = client.get(f"/api/v1/agency/referrals/{ids['FBI']}", headers=fbi.headers)
        assert kept.get_json()["packet_version"] == 1
        assert "motel" in kept.get_json()["packet"]["summary"]

        follow_up(app, case_id)  # new information: FBI's basis covers it, ICE's is gone
        offers = case_json(client, operator, case_id)["packet_updates"]
        assert [o["agency"] for o in offers] == ["FBI"]
    finally:
        server.shutdown()
        server.server_close()


def test_a_mandatory_referral_loses_only_the_contacts_it_carried_under_the_consent(
    app, client, operator, supervisor, make_actor, agency, delivery_runtime
) -> None:
    runtime = delivery_runtime(env=agency_env(agency.url))
    case_id = submit_tip(client, anonymous=False, contact={"phone": "+12025550143"})
    screening = {**TWO_BASES, "facts": {**TWO_BASES["facts"], "cross_border": None}}
    [referral_id] = screen_and_approve(app, case_id, operator, supervisor, screening)
    run_embedded_once(runtime)
    [first] = agency.packets.values()
    assert first["people"]["contacts"][0]["phone"] == "+12025550143"

    answer = client.post(f"/api/v1/cases/{case_id}/consent/withdraw",
                         json={"scope": "law_enforcement"}, headers=operator.headers)
    assert answer.status_code == 200, answer.get_json()
    run_embedded_once(runtime)

    [notice] = [p for k, p in agency.packets.items() if k.endswith("-v2")]
    assert notice["consent_withdrawn"]["basis_ended"] is False
    assert notice["consent_withdrawn"]["withheld"] == ["people.contacts"]
    assert notice["people"]["contacts"] == [] and notice["summary"] == first["summary"]
    fbi = make_actor("agency", "FBI")
    shown = client.get(f"/api/v1/agency/referrals/{referral_id}", headers=fbi.headers)
    assert "+12025550143" not in shown.get_data(as_text=True)


def test_not_now_on_the_case_page_sends_nothing_until_more_arrives(
    app, client, operator, supervisor, person, pages, agency, delivery_runtime, db_session
) -> None:
    runtime = delivery_runtime(env=agency_env(agency.url))
    case_id = submit_tip(client)
    [referral_id] = screen_and_approve(app, case_id, operator, supervisor)
    run_embedded_once(runtime)
    follow_up(app, case_id)

    desk = person("operator")
    pages.login(desk.username)
    page_url = f"/cases/{case_id}"
    page = pages.get(page_url).get_data(as_text=True)
    assert "New information since the referral to FBI was sent" in page
    assert f'id="not-now-{referral_id}"' in page
    digest = case_json(client, operator, case_id)["packet_updates"][0]["digest"]
    action = f"/cases/{case_id}/referrals/{referral_id}/packet-update"
    answer = pages.submit(page_url, action, {"decision": "not_now", "digest": digest})
    assert answer.status_code == 303

    run_embedded_once(runtime)
    assert packet_outbox(db_session) == [] and len(agency.requests) == 1
    assert "New information since" not in pages.get(page_url).get_data(as_text=True)

    follow_up(app, case_id, "One more thing: the van is white.")
    page = pages.get(page_url).get_data(as_text=True)
    assert "New information since the referral to FBI was sent" in page
    digest = case_json(client, operator, case_id)["packet_updates"][0]["digest"]
    pages.submit(page_url, action, {"decision": "send", "digest": digest})
    run_embedded_once(runtime)
    assert len(agency.packets) == 2
    [latest] = [p for k, p in agency.packets.items() if k.endswith("-v2")]
    assert len(latest["follow_ups"]) == 2


def test_a_re_screening_that_turns_consent_to_no_tells_its_holders_too(
    app, client, operator, supervisor, agency, delivery_runtime
) -> None:
    runtime, ice, server = two_agencies(delivery_runtime, agency)
    try:
        case_id = submit_tip(client)
        screen_and_approve(app, case_id, operator, supervisor, TWO_BASES)
        run_embedded_once(runtime)
        for event, extra in (("close", {"resolution_code": "referred"}), ("reopen", {})):
            version = case_json(client, supervisor, case_id)["version"]
            answer = client.post(f"/api/v1/cases/{case_id}/events", headers=supervisor.headers,
                                 json={"event": event, "version": version, "reason": "again",
                                       **extra})
            assert answer.status_code == 200, answer.get_json()
        screened = client.put(
            f"/api/v1/cases/{case_id}/screening", headers=operator.headers,
            json={**TWO_BASES, "consent": {"law_enforcement": False, "given_by": "victim"}},
        )
        assert screened.status_code == 200, screened.get_json()
        run_embedded_once(runtime)

        assert len(agency.packets) == 1
        [notice] = [p for k, p in ice.packets.items() if k.endswith("-v2")]
        assert notice["packet_type"] == "consent_withdrawn" and "summary" not in notice
    finally:
        server.shutdown()
        server.server_close()


def test_the_case_page_withdraws_a_consent_and_an_undelivered_referral_never_leaves(
    app, client, operator, supervisor, person, pages, db_session
) -> None:
    case_id = submit_tip(client)
    screen_and_approve(app, case_id, operator, supervisor, TWO_BASES)  # queued, not sent
    pages.login(person("operator").username)
    page_url = f"/cases/{case_id}"
    assert 'id="withdraw-consent-law_enforcement"' in pages.get(page_url).get_data(as_text=True)

    answer = pages.submit(page_url, f"/cases/{case_id}/consent/withdraw",
                          {"scope": "law_enforcement", "given_by": "victim"})
    assert answer.status_code == 303
    db_session.expire_all()
    case = db_session.get(Case, case_id)
    assert case.screening["consent"]["law_enforcement"]["withdrawn"] is True
    states = {r.agency_code: r.state for r in case.referrals}
    assert states == {"FBI": "queued", "ICE": "withdrawn"}
    assert packet_outbox(db_session) == []  # nothing was delivered: nothing to take back
