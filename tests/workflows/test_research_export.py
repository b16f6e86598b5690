"""The research extract: de-identified, k-anonymous, a valid Data Package, streamed.

The k check is written here from the released rows themselves (group by the
quasi-identifier columns, count distinct case keys), never from the code's own flags.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from frictionless import Package

from bench.seed import seed_command
from workflows.disclosure import LADDER, QI_COLUMNS, KAnonymity, release

CANARY = {
    "name": "Zebulon Quartermaine-Canary",
    "phone": "+1 (202) 555-0187",
    "address": "4417 Canaryfield Lane, Apt 9",
    "narrative": "canary-narrative: the blue heron warehouse behind the xylophone depot",
    "email": "heron.canary@example.org",
}
# The phone in every spelling a leak could take.
PHONE_FORMS = ("2025550187", "202-555-0187", "(202) 555-0187", "+12025550187")


def _zip_files(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _rows(files: dict[str, bytes], name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(files[f"{name}.csv"].decode())))


def assert_k_anonymous(files: dict[str, bytes], k: int) -> dict[str, int]:
    """Every released combination of quasi-identifiers is shared by >= k distinct cases."""
    released = {}
    for table in ("cases", "victims", "referrals"):
        groups: dict[tuple[str, ...], set[str]] = defaultdict(set)
        for row in _rows(files, table):
            groups[tuple(row[c] for c in QI_COLUMNS)].add(row["case_key"])
        small = {combo: len(keys) for combo, keys in groups.items() if len(keys) < k}
        assert small == {}, f"{table}: combinations seen fewer than {k} times: {small}"
        released[table] = sum(len(keys) for keys in groups.values())
    return released


def _export(client: Any, actor: Any, start: str = "2000-01-01", end: str = "2100-01-01") -> Any:
    return client.get(f"/api/v1/exports/research?from={start}&to={end}", headers=actor.headers)


@pytest.fixture
def researcher(make_actor):  # type: ignore[no-untyped-def]
    """A researcher with a token."""
    return make_actor("researcher")


def test_no_canary_name_phone_address_or_narrative_appears_anywhere(
    client, operator, researcher, cases
) -> None:
    body = {
        "caller_type": "victim", "caller_name": CANARY["name"], "caller_phone": CANARY["phone"],
        "safe_contact": {"notes": CANARY["email"]}, "location": CANARY["address"],
        "narrative": CANARY["narrative"],
    }
    logged = client.post("/api/v1/calls", json=body, headers=operator.headers)
    assert logged.status_code == 201, logged.get_json()
    case = logged.get_json()
    cases.screen(operator, case["id"], {
        "facts": {"victim_age": 16, "commercial_sex": True, "trafficking_type": "sex",
                  "venue": "escort_services"},
        "indicators": ["under_18_commercial_sex"],
        "consent": {"law_enforcement": True, "services": True, "callback": False},
    })
    tip = client.post("/api/v1/tips", json={"narrative": CANARY["narrative"],
                                            "location": CANARY["address"]})
    assert tip.status_code == 201
    answer = _export(client, researcher)
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    assert answer.mimetype == "application/zip"
    files = _zip_files(answer.get_data())
    assert set(files) >= {"datapackage.json", "cases.csv", "victims.csv", "referrals.csv",
                          "data-dictionary.csv", "suppression.csv"}
    everything = b"\n".join(files.values()).decode().lower()
    for value in (*CANARY.values(), *PHONE_FORMS, case["reference"],
                  tip.get_json()["reference"], "heron", "xylophone", "canaryfield",
                  "quartermaine"):
        assert value.lower() not in everything, value
    # Two cases, below k: counted as dropped, and the package says so.
    package = json.loads(files["datapackage.json"])
    assert package["suppression"]["cases"]["dropped"] == 2
    assert _rows(files, "cases") == []


def test_a_seeded_database_exports_a_valid_k_anonymous_package(
    runner, tmp_path: Path, app
) -> None:
    seeded = runner.invoke(seed_command, ["--cases", "3000", "--batch", "1000"])
    assert seeded.exit_code == 0, seeded.output
    out = tmp_path / "extract"
    result = runner.invoke(args=["export", "research", "--from", "2000-01-01", "--to",
                                 "2100-12-31", "--out", str(out)])
    assert result.exit_code == 0, result.output
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    released = assert_k_anonymous(files, 5)
    package = json.loads(files["datapackage.json"])
    summary = package["suppression"]
    # Everything is accounted for: released at some rung, or dropped.
    assert sum(summary["cases"].values()) == 3000
    assert released["cases"] == sum(n for lvl, n in summary["cases"].items() if lvl != "dropped")
    assert released["cases"] > 2000  # generalisation keeps most cases, suppression few
    assert summary["cases"]["exact"] > 0 and summary["cases"]["dropped"] < 150
    cases = _rows(files, "cases")
    assert {row["period"][:4] for row in cases} - {"*"}  # periods survive, coarsened or not
    assert any(row["state"] in ("CA", "TX") for row in cases)
    assert any(row["investigation"] == "true" for row in _rows(files, "referrals"))
    # Frictionless itself: types, enums (closed lists), primary and foreign keys.
    report = Package(str(out / "datapackage.json")).validate()
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])[:10]
    dictionary = _rows(files, "data-dictionary")
    assert {r["field"] for r in dictionary if r["quasi_identifier"] == "yes"} == set(
        QI_COLUMNS)


def test_a_smaller_k_releases_more_and_still_holds(runner, tmp_path: Path) -> None:
    assert runner.invoke(seed_command, ["--cases", "800"]).exit_code == 0
    shown = {}
    for k in (2, 10):
        out = tmp_path / f"k{k}"
        result = runner.invoke(args=["export", "research", "--from", "2000-01-01", "--to",
                                     "2100-12-31", "--out", str(out), "--k", str(k)])
        assert result.exit_code == 0, result.output
        files = {p.name: p.read_bytes() for p in out.iterdir()}
        assert_k_anonymous(files, k)
        shown[k] = json.loads(files["datapackage.json"])["suppression"]["cases"]["exact"]
    assert shown[2] > shown[10]


@pytest.mark.parametrize(("query", "field"), [
    ("from=2026-02-01&to=2026-01-01", "to"),
    ("from=2026-13-01&to=2026-01-01", "from"),
    ("to=2026-01-01", "from"),
    ("from=" + "9" * 5000 + "&to=2026-01-01", "from"),
])
def test_a_bad_range_is_a_422_naming_the_field(client, researcher, query, field) -> None:
    answer = client.get(f"/api/v1/exports/research?{query}", headers=researcher.headers)
    assert answer.status_code == 422
    assert field in json.dumps(answer.get_json())


def test_a_researcher_sees_no_case_and_an_operator_no_export(
    client, researcher, operator, cases
) -> None:
    case = cases.call(operator)
    for url in (f"/api/v1/cases/{case['id']}", "/api/v1/cases"):
        assert client.get(url, headers=researcher.headers).status_code in (403, 404), url
    assert _export(client, operator).status_code == 403
    assert client.get("/api/v1/exports/research?from=2026-01-01&to=2026-01-02").status_code \
        == 401


def test_each_export_is_in_the_audit_log(client, researcher, db_session) -> None:
    from sqlalchemy import select

    from workflows.models import AuditEvent

    assert _export(client, researcher, "2026-01-01", "2026-06-30").status_code == 200
    event = db_session.scalar(select(AuditEvent).where(AuditEvent.action == "research_export"))
    assert event is not None and event.actor == researcher.username
    assert event.detail == {"from": "2026-01-01", "to": "2026-06-30"} and event.case_id is None


# --- the ladder itself, table-driven ---------------------------------------------------

def _qi(state: str = "TX", period: str = "2026-03", band: str = "25-34", ttype: str = "sex",
        venue: str = "escort_services", group: str = "foreign_national") -> Any:
    return (state, period, band, ttype, venue, group)


@pytest.mark.parametrize(("others", "expected"), [
    # Four more cases exactly alike: five in all, released as recorded.
    ([_qi()] * 4, "exact"),
    # Alike but for venue and exact age: the first rung joins them.
    ([_qi(band="18-24", venue="residential")] * 4, "venue_age"),
    # Another month of the same quarter.
    ([_qi(period="2026-02", venue="residential")] * 4, "quarter"),
    # Another state of the same census region.
    ([_qi(state="OK", period="2026-01")] * 4, "region"),
    # Another quarter of the year, another citizenship group.
    ([_qi(state="OK", period="2026-11", group="unknown")] * 4, "year"),
    # Nothing in common but being a case.
    ([_qi(state="CA", period="2024-01", band="minor", ttype="labor")] * 4, "all"),
    # Too few cases in all: not released.
    ([_qi()] * 3, "dropped"),
])
def test_a_rare_combination_climbs_the_ladder_until_k_cases_share_it(others, expected) -> None:
    table = KAnonymity(5)
    rows = [_qi(), *others]
    for case_id, qi in enumerate(rows):
        table.add(qi, case_id)
    table.resolve()
    level = table.level_of(_qi())
    assert (LADDER[level].name if level < len(LADDER) else "dropped") == expected
    if expected != "dropped":
        shared = [qi for qi in rows if release(qi, table.level_of(qi)) == release(_qi(), level)]
        assert len(shared) >= 5


def test_rows_of_one_case_count_once() -> None:
    table = KAnonymity(3)
    for _ in range(5):  # five referrals of one case
        table.add(_qi(), 1)
    table.add(_qi(), 2)
    table.resolve()
    assert table.summary()["dropped"] == 2  # two cases, not six rows


def test_a_case_under_two_combinations_counts_once_when_they_merge() -> None:
    """Two victims of one case differ only in venue: one rung up they are one
    combination, and the case counts once there, so with k = 3 two cases stay too few."""
    table = KAnonymity(3)
    table.add(_qi(venue="escort_services"), 1)
    table.add(_qi(venue="residential"), 1)
    table.add(_qi(venue="escort_services"), 2)
    table.resolve()
    assert table.summary()["dropped"] == 3  # three rows' worth of counts, all dropped
    assert table.level_of(_qi(venue="residential")) == len(LADDER)


def test_reading_cases_takes_the_same_queries_for_few_cases_as_for_many(
    runner, app, db_session
) -> None:
    """Three streamed selects whatever the size: nothing per case or per batch."""
    from datetime import UTC, datetime

    from sqlalchemy import event

    from config.database import runtime
    from workflows.research import BATCH, Vocabulary, case_records

    with app.app_context():
        vocab = Vocabulary.from_catalogs(runtime().catalogs)
        engine = runtime().engine
    counted: list[int] = []
    for size in (10, BATCH * 2 + 10):
        assert runner.invoke(seed_command, ["--cases", str(size)]).exit_code == 0
        statements: list[str] = []

        def count(*args: Any, seen: list[str] = statements) -> None:
            seen.append(args[2])

        event.listen(engine, "before_cursor_execute", count)
        try:
            read = sum(1 for _ in case_records(db_session, datetime(2000, 1, 1, tzinfo=UTC),
                                               datetime(2100, 1, 1, tzinfo=UTC), vocab))
        finally:
            event.remove(engine, "before_cursor_execute", count)
            db_session.rollback()
        assert read >= size
        counted.append(len(statements))
    assert counted[0] == counted[1] <= 4, counted
