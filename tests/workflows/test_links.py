"""Links between tips: related cases, search by identifier, attach, merge, agency counts."""

from __future__ import annotations

import hashlib
import subprocess
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select, text, update
from werkzeug.datastructures import MultiDict

from intake.models import Signal, TipMessage
from tests.conftest import backend
from workflows.audit import verify_chain
from workflows.models import AuditEvent, Case, CaseIdentifier, Referral
from workflows.packets import build_packet

from ..intake.twilio_caller import HOTLINE, PUBLIC_BASE, Call, new_sid, parse_twiml, post_signed

NUMBER_SMS = "(214) 555-0134"
NUMBER_WEB = "+12145550134"
MINOR_SEX = {
    "facts": {"victim_age": 16, "commercial_sex": True, "trafficking_type": "sex"},
    "indicators": ["under_18_commercial_sex"],
    "consent": {"law_enforcement": False, "services": True, "callback": False},
}


def text_in(client, body: str, sender: str = "+13125550101") -> None:  # type: ignore[no-untyped-def]
    """One text message into the SMS line, signed as Twilio signs it."""
    sid = new_sid("SM")
    params = MultiDict({"MessageSid": sid, "AccountSid": "AC" + "0" * 32, "From": sender,
                        "To": HOTLINE, "Body": body, "NumMedia": "0"})
    parse_twiml(post_signed(client, PUBLIC_BASE + "/twilio/sms", params))


def web_tip(client, narrative: str) -> str:  # type: ignore[no-untyped-def]
    answer = client.post("/api/v1/tips", json={"narrative": narrative})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["reference"]  # type: ignore[no-any-return]


def two_related_tips(client, cases) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """An SMS tip and a web tip naming one number written two ways; their case ids."""
    text_in(client, f"a man keeps girls at a motel, his number is {NUMBER_SMS}")
    web = web_tip(client, f"Ads for the spa list {NUMBER_WEB} as the contact.")
    return 1, cases.case_id_of(web)


def test_an_sms_tip_and_a_web_tip_naming_one_number_are_related(
    client, cases, operator
) -> None:
    sms_case, web_case = two_related_tips(client, cases)
    assert sms_case != web_case
    shown = cases.show(operator, web_case)
    assert [(r["id"], r["shared"]) for r in shown["related"]] == [(sms_case, ["phone"])]
    assert [(r["id"], r["shared"]) for r in cases.show(operator, sms_case)["related"]] == [
        (web_case, ["phone"])
    ]


def test_search_by_phone_finds_both_tips_by_hash(client, cases, operator, db_session) -> None:
    sms_case, web_case = two_related_tips(client, cases)
    for written in ("214-555-0134", "+1 (214) 555 0134", "2145550134"):
        answer = client.get("/api/v1/search", query_string={"phone": written},
                            headers=operator.headers)
        assert answer.status_code == 200, answer.get_json()
        body = answer.get_json()
        assert body["kind"] == "phone"
        assert sorted(c["id"] for c in body["items"]) == sorted([sms_case, web_case])
    searches = db_session.scalars(select(AuditEvent).where(AuditEvent.action == "search")).all()
    assert searches[0].detail == {"kind": "phone", "found": 2}
    assert all("214" not in str(e.detail) for e in searches)


@pytest.mark.parametrize(
    ("kind", "first", "second", "query"),
    [
        ("handle", "@SunriseGirls", "sunrisegirls", {"handle": "@SUNRISEGIRLS"}),
        ("vehicle", "abc 1234", "ABC-1234", {"plate": "Abc1234"}),
        ("business", "Sunrise Spa, LLC", "sunrise spa", {"business": "SUNRISE SPA INC."}),
        ("address", "123 North Main Street, Dallas, TX", "123 N. Main St., Dallas TX 75201",
         {"address": "123 n main st dallas tx"}),
        ("email", "Boss@Example.com", "boss@example.com", {"email": "BOSS@example.COM"}),
    ],
)
def test_each_kind_of_identifier_links_however_it_was_written(
    client, cases, operator, kind, first, second, query
) -> None:
    one, two, other = cases.call(operator), cases.call(operator), cases.call(operator)
    for case, value in ((one, first), (two, second)):
        answer = client.post(f"/api/v1/cases/{case['id']}/subjects",
                             json={"kind": kind, "value": value}, headers=operator.headers)
        assert answer.status_code == 201, answer.get_json()
    assert cases.show(operator, one["id"])["related"] == [
        {"id": two["id"], "reference": two["reference"], "shared": [kind]}
    ]
    assert cases.show(operator, other["id"])["related"] == []
    found = client.get("/api/v1/search", query_string=query, headers=operator.headers)
    assert sorted(c["id"] for c in found.get_json()["items"]) == [one["id"], two["id"]]


def test_a_location_address_links_to_an_address_subject(client, cases, operator) -> None:
    one, two = cases.call(operator), cases.call(operator)
    client.post(f"/api/v1/cases/{one['id']}/locations", headers=operator.headers,
                json={"address": "123 North Main Street", "city": "Dallas", "state": "TX"})
    client.post(f"/api/v1/cases/{two['id']}/subjects", headers=operator.headers,
                json={"kind": "address", "value": "123 N Main St, Dallas, TX 75201"})
    assert [r["shared"] for r in cases.show(operator, one["id"])["related"]] == [["address"]]


def test_search_needs_exactly_one_identifier_and_a_valid_one(client, operator) -> None:
    for query in ({}, {"phone": "2145550134", "handle": "x"}, {"colour": "red"},
                  {"phone": "not a phone"}, {"phone": "1" * 65}):
        answer = client.get("/api/v1/search", query_string=query, headers=operator.headers)
        assert answer.status_code == 422, (query, answer.get_json())


def test_a_follow_up_message_naming_a_number_links_the_tip(client, cases, operator) -> None:
    reference = client.post("/api/v1/tips", json={"narrative": "first words"}).get_json()
    first = cases.case_id_of(reference["reference"])
    other = cases.case_id_of(web_tip(client, f"call {NUMBER_WEB}"))
    answer = client.post(f"/api/v1/tips/{reference['reference']}/messages",
                         json={"body": f"I remembered: {NUMBER_SMS}"},
                         headers={"X-Tip-Passphrase": reference["passphrase"]})
    assert answer.status_code == 201
    assert [r["id"] for r in cases.show(operator, first)["related"]] == [other]


def test_hostile_narrative_is_scanned_quickly_and_safely(client, db_session) -> None:
    web_tip(client, "1" * 20000)
    web_tip(client, "(214) 555-0134 " * 1300)
    assert db_session.scalar(select(func.count()).select_from(Case)) == 2


@pytest.mark.services
@pytest.mark.skipif(backend() != "services", reason="query plans are PostgreSQL's")
def test_related_cases_are_found_through_the_hash_index(
    client, cases, operator, db_session
) -> None:
    from workflows.links import _sharing

    _, web_case = two_related_tips(client, cases)
    for i in range(50):
        web_tip(client, f"tip {i} about +1 202 555 {1000 + i:04d}")
    db_session.execute(text("ANALYZE case_identifiers"))
    statement = _sharing(web_case).compile(db_session.get_bind(),
                                          compile_kwargs={"literal_binds": True})
    db_session.execute(text("SET enable_seqscan = off"))  # as on a table of millions of rows
    plan = "\n".join(db_session.scalars(text(f"EXPLAIN {statement}")))
    assert "ix_case_identifiers_value_hash_case_id" in plan, plan


@pytest.mark.services
@pytest.mark.skipif(backend() != "services", reason="pg_dump needs PostgreSQL")
def test_pg_dump_holds_neither_the_number_nor_its_hash_input(
    client, cases, operator, settings, db_session
) -> None:
    two_related_tips(client, cases)
    assert db_session.scalar(select(func.count()).select_from(CaseIdentifier)) >= 3
    url = urlsplit(settings.database_url.replace("postgresql+psycopg", "postgresql"))
    dump = subprocess.run(
        ["pg_dump", "--no-owner", "-h", url.hostname or "127.0.0.1", "-p",
         str(url.port or 5432), "-U", url.username or "postgres", url.path.lstrip("/")],
        capture_output=True, check=True, timeout=120,
    ).stdout.decode("utf-8")
    assert "case_identifiers" in dump
    plain = "phone:+12145550134"
    for needle in ("2145550134", "214) 555", "555-0134", plain,
                   hashlib.sha256(plain.encode()).hexdigest()):
        assert needle not in dump, needle


def test_the_operator_answering_an_ivr_call_adds_to_its_case(
    client, cases, operator, db_session
) -> None:
    call = Call(client)
    call.dial_in()
    ivr_case = db_session.scalar(select(Signal.case_id).where(Signal.call_sid == call.call_sid))
    answer = client.post("/api/v1/calls", headers=operator.headers, json={
        "caller_type": "victim", "narrative": "spoke with the caller", "call_sid": call.call_sid,
        "subjects": [{"kind": "phone", "value": NUMBER_SMS}]})
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    assert body["id"] == ivr_case
    assert sorted(s["channel"] for s in body["signals"]) == ["operator", "voice"]
    assert db_session.scalar(select(func.count()).select_from(Case)) == 1
    assert [e["action"] for e in body["events"]].count("attach") == 1
    # The same call logged again lands on the same case again, never a second case.
    again = client.post("/api/v1/calls", headers=operator.headers, json={
        "caller_type": "victim", "narrative": "more", "call_sid": call.call_sid})
    assert again.status_code == 201 and again.get_json()["id"] == ivr_case


def test_a_call_attaches_by_case_id_and_refuses_closed_or_mismatched_cases(
    client, cases, operator, supervisor, db_session
) -> None:
    first, second = cases.call(operator, call_sid="CA" + "1" * 32), cases.call(operator)
    attached = client.post("/api/v1/calls", headers=operator.headers, json={
        "caller_type": "victim", "narrative": "called back", "case_id": first["id"]})
    assert attached.status_code == 201 and len(attached.get_json()["signals"]) == 2
    mismatch = client.post("/api/v1/calls", headers=operator.headers, json={
        "caller_type": "victim", "narrative": "x", "case_id": second["id"],
        "call_sid": "CA" + "1" * 32})
    assert mismatch.status_code == 409
    db_session.execute(update(Case).where(Case.id == second["id"]).values(state="closed"))
    db_session.commit()
    closed = client.post("/api/v1/calls", headers=operator.headers, json={
        "caller_type": "victim", "narrative": "x", "case_id": second["id"]})
    assert closed.status_code == 409
    missing = client.post("/api/v1/calls", headers=operator.headers, json={
        "caller_type": "victim", "narrative": "x", "case_id": 99999})
    assert missing.status_code == 404
    assert db_session.scalar(select(func.count()).select_from(Signal)) == 3


def _referred(cases, operator, supervisor, case_id: int) -> dict:  # type: ignore[no-untyped-def, type-arg]
    cases.screen(operator, case_id, MINOR_SEX)
    cases.event(operator, case_id, "submit_for_approval")
    return cases.event(supervisor, case_id, "approve", reason="ok")  # type: ignore[no-any-return]


def test_merge_keeps_every_signal_referral_and_event(
    client, cases, operator, supervisor, db_session, runner
) -> None:
    sms_case, web_case = two_related_tips(client, cases)
    _referred(cases, operator, supervisor, sms_case)
    client.post(f"/api/v1/cases/{sms_case}/notes", json={"body": "n1"}, headers=operator.headers)
    events_before = db_session.scalar(select(func.count()).select_from(AuditEvent))
    source_reference = cases.show(operator, sms_case)["reference"]
    url = f"/api/v1/cases/{sms_case}/merge"
    assert client.post(url, json={"into": web_case}, headers=operator.headers).status_code == 403
    answer = client.post(url, json={"into": web_case}, headers=supervisor.headers)
    assert answer.status_code == 200, answer.get_json()
    merged = answer.get_json()
    assert merged["id"] == web_case and merged["merged"] == [sms_case]
    assert sorted(s["channel"] for s in merged["signals"]) == ["sms", "web"]
    assert [r["agency"] for r in merged["referrals"]] == ["FBI"]
    assert [n["body"] for n in merged["notes"]] == ["n1"]
    assert merged["related"] == []  # the two tips are one case now
    actions = [e["action"] for e in merged["events"]]
    assert "merge" in actions and "merge_in" in actions and "approve" in actions
    assert len(merged["events"]) >= events_before + 2
    assert db_session.scalar(select(func.count()).select_from(AuditEvent)) >= events_before + 2
    assert db_session.scalar(select(func.count()).select_from(TipMessage).where(
        TipMessage.case_id == sms_case)) == 1  # the texter's thread stays theirs
    # The merged case's id and reference still find the case.
    assert cases.show(operator, sms_case)["id"] == web_case
    queue = client.get("/api/v1/cases", query_string={"reference": source_reference},
                       headers=supervisor.headers).get_json()
    assert [c["id"] for c in queue["items"]] == [web_case]
    search = client.get("/api/v1/search", query_string={"phone": NUMBER_WEB},
                        headers=operator.headers).get_json()
    assert [c["id"] for c in search["items"]] == [web_case]
    assert verify_chain(db_session).ok
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output


def test_merge_refusals(client, cases, operator, supervisor) -> None:
    one, two, three = cases.call(operator), cases.call(operator), cases.call(operator)
    post = lambda case, into: client.post(  # noqa: E731
        f"/api/v1/cases/{case}/merge", json={"into": into}, headers=supervisor.headers)
    assert post(one["id"], one["id"]).status_code == 409
    assert post(one["id"], 99999).status_code == 404
    assert post(one["id"], "2").status_code == 422
    assert post(one["id"], two["id"]).status_code == 200
    assert post(one["id"], three["id"]).status_code == 409  # already merged
    assert post(two["id"], one["id"]).status_code == 409  # one lives on in two
    assert post(three["id"], one["id"]).status_code == 200  # into two, through one
    assert cases.show(operator, three["id"])["id"] == two["id"]


def test_the_agency_packet_counts_its_own_earlier_referrals_sharing_an_identifier(
    client, cases, operator, supervisor, db_session
) -> None:
    sms_case, web_case = two_related_tips(client, cases)
    first = _referred(cases, operator, supervisor, sms_case)["referrals"][0]
    db_session.execute(update(Referral).where(Referral.id == first["id"]).values(
        state="sent", sent_at=func.now()))
    db_session.commit()
    second = _referred(cases, operator, supervisor, web_case)["referrals"][0]
    referral = db_session.get(Referral, second["id"])
    packet = build_packet(referral)
    sms_reference = cases.show(operator, sms_case)["reference"]
    assert packet["agency"] == "FBI"
    assert packet["related_referrals"] == {"count": 1, "references": [sms_reference]}
    # Another agency's referral never counts, nor shows its reference.
    db_session.execute(update(Referral).where(Referral.id == first["id"]).values(
        agency_code="ICE"))
    db_session.commit()
    db_session.expire_all()
    assert build_packet(db_session.get(Referral, second["id"]))["related_referrals"] == {
        "count": 0, "references": []}


def test_a_purge_erases_the_case_file_and_its_links(client, cases, operator, db_session) -> None:
    from workflows.db import utcnow
    from workflows.models import Location, Subject, Victim
    from workflows.retention import purge_case

    sms_case, web_case = two_related_tips(client, cases)
    for item, body in (("subjects", {"kind": "handle", "value": "@boss"}),
                       ("victims", {"age": 16, "citizenship": "Mexico"}),
                       ("locations", {"address": "1 Elm St", "city": "Tyler", "state": "TX"})):
        answer = client.post(f"/api/v1/cases/{sms_case}/{item}", json=body,
                             headers=operator.headers)
        assert answer.status_code == 201
    case = db_session.get(Case, sms_case)
    case.state, case.closed_at = "closed", utcnow()
    purge_case(db_session, case, utcnow(), 1)
    db_session.commit()
    assert db_session.scalar(select(func.count()).select_from(CaseIdentifier).where(
        CaseIdentifier.case_id == sms_case)) == 0
    assert db_session.scalar(select(func.count()).select_from(Subject).where(
        Subject.case_id == sms_case)) == 0
    victim = db_session.scalars(select(Victim).where(Victim.case_id == sms_case)).one()
    assert (victim.age, victim.citizenship) == (16, None)
    place = db_session.scalars(select(Location).where(Location.case_id == sms_case)).one()
    assert (place.address, place.state) == (None, "TX")  # the state stays, as a statistic
    assert cases.show(operator, web_case)["related"] == []
    found = client.get("/api/v1/search", query_string={"phone": NUMBER_WEB},
                       headers=operator.headers).get_json()
    assert [c["id"] for c in found["items"]] == [web_case]
