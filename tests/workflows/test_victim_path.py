"""One victim's path through the hotline, end to end through the public interfaces
(issue 13): a call, screening with her consents, a shelter referral answered by the
provider through its signed link, referrals approved and delivered to HHS and ICE, HHS's
certification letter and ICE's investigation and restitution, read back as the dated
relief timeline on the staff case page and in the dashboard's totals.

Run with ``-s`` to see the timeline as staff see it.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from referrals.provider_pages import SALT
from tests.flows import _catalogs
from tests.page_clients import csrf_token
from workflows.db import transaction
from workflows.lifecycle import fire_referral_event
from workflows.providers import ServiceProvider
from workflows.relief import relief_totals

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "hsds"
SCREENING = {
    "facts": {"victim_age": 34, "foreign_national": True, "force_fraud_coercion": True,
              "trafficking_type": "labor", "venue": "restaurants_food_service",
              "documents_confiscated": True},
    "indicators": ["forced_to_work", "debt_to_employer"],
    "consent": {"law_enforcement": True, "services": True, "callback": True,
                "given_by": "victim"},
}


def _rows(page: str, marker: str) -> list[list[str]]:
    table = page[page.index(marker):]
    table = table[: table.index("</table>")]
    return [[re.sub(r"<[^>]+>|\s+", " ", cell).strip() for cell in re.findall(
        r"<td>(.*?)</td>", row, re.S)] for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)
            if "<td>" in row]


def _agency_event(client: Any, token: str, referral_id: int, body: dict[str, Any]) -> None:
    answer = client.post(f"/api/v1/agency/referrals/{referral_id}/events", json=body,
                         headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.get_json()


def test_from_a_call_to_a_shelter_a_certification_letter_and_restitution(
    app, client, runner, cases, operator, supervisor, make_actor, logged_in, settings,
    db_session,
) -> None:
    # 1. The call, screened with her consents: services and law enforcement, by herself.
    case_id = cases.call(operator, narrative="They took my passport; I work 14 hours at "
                                             "the restaurant and owe them for the trip")["id"]
    screened = cases.screen(operator, case_id, SCREENING)
    recommended = sorted(r["agency"] for r in screened["recommended_referrals"])

    # 2. A shelter from the HSDS directory, referred under the services consent.
    assert runner.invoke(args=["services", "import", str(SAMPLE)]).exit_code == 0
    shelter = db_session.scalar(
        select(ServiceProvider.id).where(ServiceProvider.hsds_id == "svc-shelter-1"))
    made = client.post(f"/api/v1/cases/{case_id}/service-referrals", headers=operator.headers,
                       json={"service_id": shelter, "reason": "A bed tonight; Spanish speaker"})
    assert made.status_code == 201, made.get_json()
    # The provider answers through its signed link (the worker e-mails it: tested in
    # tests/referrals/test_service_referrals.py), with no account.
    link = "/provider/r/" + URLSafeTimedSerializer(settings.secret_key, salt=SALT).dumps(
        {"r": made.get_json()["id"]})
    provider = app.test_client()
    for answer in ("acknowledge", "accept", "report_service"):
        token = csrf_token(provider.get(link).get_data(as_text=True))
        assert provider.post(link, data={"answer": answer, "note": "bed given",
                                         "csrf_token": token}).status_code == 200

    # 3. Approved by a supervisor; each referral delivered (as the worker marks it).
    cases.event(operator, case_id, "submit_for_approval")
    approved = cases.event(supervisor, case_id, "approve", reason="reviewed")
    referrals = {r["agency"]: r["id"] for r in approved["referrals"]}
    print("\nreferrals approved:", ", ".join(
        f"{r['agency']} ({r['rule']}, {r['legal_basis']['type']})" for r in approved["referrals"]))
    assert sorted(referrals) == recommended and {"HHS", "ICE"} <= set(referrals)
    with app.extensions["runtime"].session() as session, transaction(session):
        for referral_id in referrals.values():
            fire_referral_event(session, referral_id, "mark_sent", None,
                                catalogs=_catalogs(app))

    # 4. The agencies answer through their API.
    hhs, ice = make_actor("agency", "HHS"), make_actor("agency", "ICE")
    for actor, referral_id in ((hhs, referrals["HHS"]), (ice, referrals["ICE"])):
        _agency_event(client, actor.token, referral_id, {"event": "acknowledge"})
        _agency_event(client, actor.token, referral_id, {"event": "accept"})
    for actor, agency, outcome in (
        (ice, "ICE", {"kind": "investigation", "status": "opened", "date": "2026-09-02"}),
        (hhs, "HHS", {"kind": "certification_letter", "status": "issued",
                      "date": "2026-10-05"}),
        (ice, "ICE", {"kind": "restitution", "status": "ordered", "date": "2026-11-10",
                      "amount": 18000}),
        (ice, "ICE", {"kind": "restitution", "status": "paid", "date": "2026-11-24",
                      "amount": 4500}),
    ):
        _agency_event(client, actor.token, referrals[agency],
                      {"event": "record_outcome", "outcome": outcome})

    # 5. What staff read on the case page.
    page = logged_in("supervisor").get(f"/cases/{case_id}").get_data(as_text=True)
    timeline = _rows(page, 'id="relief-timeline"')
    print("\nrelief timeline of the case:")
    for row in timeline:
        print("  " + " | ".join(row))
    assert [row[:4] for row in timeline] == [
        ["2026-09-02", "Investigation", "opened", ""],
        ["2026-10-05", "Certification letter (HHS, adult)", "issued", ""],
        ["2026-11-10", "Restitution", "ordered", "$18,000.00"],
        ["2026-11-24", "Restitution", "paid", "$4,500.00"],
    ]
    assert [row[4][-5:] for row in timeline] == ["(ICE)", "(HHS)", "(ICE)", "(ICE)"]
    services = _rows(page, 'id="service-referrals"')
    print("service referrals of the case:")
    for row in services:
        print("  " + " | ".join(row))
    [shelter_row] = services
    assert shelter_row[:3] == ["Casa Segura", "Casa Segura Emergency Shelter", "accepted"]
    assert shelter_row[4] and shelter_row[5] == "bed given"  # the service was given

    # 6. The dashboard's relief figures for the autumn count this victim's.
    totals = relief_totals(db_session, date(2026, 9, 1), date(2026, 11, 30))
    assert (totals.restitution_ordered, totals.restitution_paid, totals.letters_issued) == (
        18000, 4500, 1)
