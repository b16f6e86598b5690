"""A victim's relief (issue 13): the dated timeline on the staff case page, and the
dashboard's relief totals for a date range."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from tests.flows import accepted_referral, record_outcome
from workflows.db import transaction, utcnow
from workflows.models import Referral
from workflows.relief import relief_totals


def _timeline(page: str) -> list[list[str]]:
    table = page[page.index('id="relief-timeline"'):]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr class=\"relief-[a-z_0-9]+\">(.*?)</tr>", table, re.S)
    return [[re.sub(r"\s+", " ", cell).strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
            for row in rows]


def test_the_case_page_shows_every_outcome_and_the_1367_flag_in_date_order(
    app, client, logged_in, operator, db_session
) -> None:
    fbi_referral = accepted_referral(app, "FBI")
    case_id = db_session.get(Referral, fbi_referral).case_id
    ice_referral = accepted_referral(app, "ICE", case_id=case_id)
    # Recorded out of date order, by two agencies.
    record_outcome(app, fbi_referral, kind="restitution", status="paid", date="2026-04-01",
                   amount=2500)
    record_outcome(app, fbi_referral, kind="investigation", status="opened", date="2026-01-10")
    record_outcome(app, ice_referral, kind="continued_presence", status="granted",
                   date="2026-02-15")  # sets the 1367 flag (dated today)
    record_outcome(app, fbi_referral, kind="restitution", status="ordered", date="2026-03-01",
                   amount=10000)
    # Staff clear the flag through the API that records it (PUT …/immigration-relief).
    version = client.get(f"/api/v1/cases/{case_id}", headers=operator.headers).get_json()[
        "version"]
    cleared = client.put(f"/api/v1/cases/{case_id}/immigration-relief",
                         json={"protected": False, "version": version}, headers=operator.headers)
    assert cleared.status_code == 200, cleared.get_json()

    page = logged_in("supervisor").get(f"/cases/{case_id}").get_data(as_text=True)

    today = utcnow().date().isoformat()
    rows = _timeline(page)
    assert [row[:4] for row in rows] == [
        ["2026-01-10", "Investigation", "opened", ""],
        ["2026-02-15", "Continued presence (ICE)", "granted", ""],
        ["2026-03-01", "Restitution", "ordered", "$10,000.00"],
        ["2026-04-01", "Restitution", "paid", "$2,500.00"],
        [today, "Immigration relief protected (8 U.S.C. 1367)", "set", ""],
        [today, "Immigration relief protected (8 U.S.C. 1367)", "cleared", ""],
    ]
    agencies = [row[4] for row in rows]
    assert agencies[0].endswith("(FBI)") and agencies[1].endswith("(ICE)")
    assert agencies[4] == "hotline (flow-ice)" and agencies[5] == f"hotline ({operator.username})"


def test_a_case_without_relief_says_so(app, logged_in, db_session) -> None:
    case_id = db_session.get(Referral, accepted_referral(app, "FBI")).case_id
    page = logged_in("operator").get(f"/cases/{case_id}").get_data(as_text=True)
    assert '<p id="relief-timeline">No relief reported yet' in page


def _sent_on(db_session, referral_id: int, day: date) -> None:  # type: ignore[no-untyped-def]
    with transaction(db_session):
        db_session.get(Referral, referral_id).sent_at = datetime(
            day.year, day.month, day.day, 9, tzinfo=UTC)


def test_dashboard_totals_relief_dated_in_its_range(app, logged_in, db_session) -> None:
    restitution = accepted_referral(app, "FBI")
    record_outcome(app, restitution, kind="restitution", status="ordered", date="2026-02-01",
                   amount=10000)
    record_outcome(app, restitution, kind="restitution", status="paid", date="2026-03-01",
                   amount=2500.25)
    record_outcome(app, restitution, kind="restitution", status="paid", date="2025-12-31",
                   amount=999)  # before the range
    adult = accepted_referral(app, "HHS")
    _sent_on(db_session, adult, date(2026, 1, 20))
    record_outcome(app, adult, kind="certification_letter", status="requested", date="2026-01-25")
    record_outcome(app, adult, kind="certification_letter", status="issued", date="2026-01-30")
    record_outcome(app, adult, kind="certification_letter", status="issued", date="2026-02-02")
    minor = accepted_referral(app, "HHS")
    _sent_on(db_session, minor, date(2026, 2, 1))
    record_outcome(app, minor, kind="interim_assistance", status="granted", date="2026-02-05")
    record_outcome(app, minor, kind="eligibility_letter", status="issued", date="2026-03-03")
    visas = accepted_referral(app, "ICE")
    record_outcome(app, visas, kind="continued_presence", status="granted", date="2026-02-10")
    record_outcome(app, visas, kind="continued_presence", status="denied", date="2026-02-11")
    record_outcome(app, visas, kind="t_visa_endorsement", status="signed", date="2026-05-01")
    record_outcome(app, visas, kind="u_visa_certification", status="certified",
                   date="2026-07-01")  # after the range
    record_outcome(app, accepted_referral(app, "ICE"), kind="continued_presence",
                   status="denied", date="2026-02-10")

    totals = relief_totals(db_session, date(2026, 1, 1), date(2026, 6, 30))

    assert (totals.restitution_ordered, totals.restitution_paid) == (10000.0, 2500.25)
    assert totals.letters_issued == 2  # the adult's (reported twice) and the minor's
    assert totals.continued_presence_granted == 1 and totals.visas_certified == 1
    assert sorted(totals.days_to_letter) == [10, 30] and totals.median_days_to_letter == 20

    supervisor = logged_in("supervisor")
    page = supervisor.get("/supervisor/dashboard?from=2026-01-01&to=2026-06-30").get_data(
        as_text=True)
    for name, shown in (("restitution-ordered", "$10,000.00"), ("restitution-paid", "$2,500.25"),
                        ("letters", "2"), ("continued-presence", "1"), ("visas", "1"),
                        ("days-to-letter", "20 days")):
        assert f'id="dash-{name}">{shown}<' in page, name
    csv = supervisor.get("/supervisor/dashboard/relief.csv?from=2026-01-01&to=2026-06-30")
    assert csv.status_code == 200
    assert csv.get_data(as_text=True).splitlines() == [
        "relief_dated_in_range,value", "restitution_ordered_usd,10000.0",
        "restitution_paid_usd,2500.25", "letters_issued,2", "continued_presence_granted,1",
        "visas_certified,1", "median_days_referral_to_letter,20.0"]
    # A range with none of it: zeros, and no median.
    empty = supervisor.get("/supervisor/dashboard?from=2024-01-01&to=2024-01-31").get_data(
        as_text=True)
    assert 'id="dash-letters">0<' in empty and 'id="dash-days-to-letter">—<' in empty
