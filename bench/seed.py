"""``flask --app bench.seed seed --cases N``: bulk-load realistic cases for the queue benchmarks.

Rows look like a hotline's history: most cases closed, the rest spread over the open
states, priorities and deadlines (some overdue), one signal per case, referrals for the
cases that reached approval. No real personal data: the encrypted columns hold valid
ciphertext of made-up text (a small pool, encrypted with the configured keys, so a
page or the agency API can open a seeded case) or NULL. No audit events are written (the
chain stays valid: it simply starts later). On PostgreSQL rows go in with ``COPY``; on
SQLite with ``executemany``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy import Table, func, select, text
from sqlalchemy.engine import Connection

from config.database import runtime
from workflows.db import Base
from workflows.pii import keyring

CASE_STATES = [  # (state, share of all cases)
    ("received", 0.06), ("screening", 0.06), ("awaiting_info", 0.03),
    ("pending_approval", 0.03), ("referred", 0.17), ("closed", 0.65),
]
PRIORITIES = [("emergency", 0, 0.02), ("urgent", 1, 0.18), ("routine", 2, 0.80)]
DEADLINE_HOURS = {"emergency": 0.25, "urgent": 24, "routine": 72}
AGENCIES = [("FBI", "minor_commercial_sex"), ("ICE", "cross_border"), ("HHS", "foreign_adult")]
REFERRAL_STATES_BY_CASE = {
    "pending_approval": [("pending", 1.0)],
    "referred": [("queued", 0.05), ("sent", 0.25), ("acknowledged", 0.25), ("accepted", 0.3),
                 ("declined", 0.1), ("failed", 0.05)],
    "closed": [("accepted", 0.7), ("declined", 0.2), ("withdrawn", 0.1)],
}
AWAITING_AGENCY = ("pending", "queued", "sent", "failed")
RESOLUTIONS = ["information_only", "no_indicators", "duplicate", "referred", "services_provided"]
NARRATIVES = [
    "Workers at a farm say the crew boss holds their passports and they owe him for travel.",
    "A teenager was seen being dropped off at a motel by different adults every night.",
    "Restaurant staff live above the kitchen and are never paid; the owner drives them.",
    "Caller's cousin was promised a hotel job but is cleaning houses for no wages.",
    "Massage parlor with covered windows, women never leave, men come and go all night.",
]
LOCATIONS = ["Springfield", "Riverside", "Fairview", "Madison", "Georgetown", "Clinton"]
CHANNELS = [("web", 0.4), ("voice", 0.35), ("sms", 0.15), ("operator", 0.10)]
# Shaped on published hotline statistics (Polaris 2019-2021): most signals about sex
# trafficking, then labor; states roughly by population; a quarter of victims minors.
TYPES = [("sex", 0.62), ("labor", 0.14), ("both", 0.05), ("unknown", 0.19)]
STATES = [("CA", 0.13), ("TX", 0.10), ("FL", 0.08), ("NY", 0.06), ("GA", 0.04), ("OH", 0.04),
          ("NC", 0.035), ("IL", 0.035), ("MI", 0.03), ("PA", 0.03), ("NV", 0.025),
          ("VA", 0.025), ("WA", 0.025), ("AZ", 0.025), ("NJ", 0.025), ("TN", 0.02),
          ("CO", 0.02), ("MO", 0.02), ("MD", 0.02), ("LA", 0.02), ("IN", 0.02), ("OK", 0.015),
          ("OR", 0.015), ("MN", 0.015), ("SC", 0.015), ("AL", 0.015), ("KY", 0.015),
          ("MA", 0.015), ("WI", 0.01), ("UT", 0.01), ("NM", 0.01), ("AR", 0.01), ("", 0.085)]
VENUES = {
    "sex": [("escort_services", 0.3), ("illicit_massage", 0.2), ("residential", 0.18),
            ("outdoor_solicitation", 0.12), ("personal_sexual_servitude", 0.05),
            ("pornography", 0.05), ("remote_sexual_acts", 0.03), (None, 0.07)],
    "labor": [("domestic_work", 0.25), ("agriculture", 0.18), ("restaurants_food_service", 0.12),
              ("traveling_sales_crews", 0.1), ("construction", 0.08), ("peddling_begging", 0.07),
              ("health_beauty_services", 0.07), ("hospitality", 0.05), ("landscaping", 0.04),
              (None, 0.04)],
    "both": [("bars_strip_clubs", 0.6), ("illicit_activities", 0.2), (None, 0.2)],
    "unknown": [(None, 1.0)],
}
AGES = [(None, 0.12), ((12, 17), 0.25), ((18, 24), 0.28), ((25, 34), 0.2), ((35, 60), 0.15)]
FOREIGN = [(True, 0.35), (False, 0.4), (None, 0.25)]
HEARD_FROM = [("friend_family", 0.2), ("web_search", 0.22), ("social_media", 0.12),
              ("professional", 0.12), ("poster_billboard", 0.07), ("tv_radio", 0.05),
              ("other", 0.05), (None, 0.17)]
# What agencies report on accepted referrals; 71 % of known outcomes an investigation.
OUTCOMES = [("open", 0.4), ("charged", 0.15), ("convicted", 0.1), ("referred_for_prosecution",
            0.06), ("closed_no_action", 0.29)]


def _pick(rng: random.Random, weighted: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    roll = rng.random()
    for item in weighted:
        roll -= item[-1]
        if roll <= 0:
            return item
    return weighted[-1]


class Seeder:
    """Generates the rows; ``encrypted`` says whether to hand over ciphertext (COPY)."""

    def __init__(self, seed: int, encrypted: bool, start_id: int, ref_start_id: int,
                 users: list[int]) -> None:
        self.rng = random.Random(seed)
        self.now = datetime.now(UTC)
        self.next_case = start_id
        self.next_referral = ref_start_id
        self.users = users
        protect = keyring.encrypt if encrypted else (lambda s: s)
        self.narratives = [protect(n) for n in NARRATIVES]
        self.locations = [protect(loc) for loc in LOCATIONS]

    def batch(self, count: int) -> tuple[list[dict], list[dict], list[dict]]:
        cases, signals, referrals = [], [], []
        rng = self.rng
        for _ in range(count):
            case_id = self.next_case
            self.next_case += 1
            state = _pick(rng, CASE_STATES)[0]
            priority, rank, _share = _pick(rng, PRIORITIES)
            age = timedelta(days=730 * rng.random() ** 2)  # denser towards today
            if state not in ("referred", "closed"):
                age = timedelta(hours=240 * rng.random())  # open cases are recent
            created = self.now - age
            # As workflows.deadlines.case_deadline keeps it: none once closed, the
            # earliest referral still awaiting its agency once referred.
            closed = state == "closed"
            deadline = None if closed else created + timedelta(hours=DEADLINE_HOURS[priority])
            screened = state != "received"
            facts = _facts(rng, priority) if screened else None
            cases.append({
                "id": case_id, "reference": f"HT-{created.year}-{case_id:07d}", "state": state,
                "priority": priority, "priority_rank": rank,
                "level": rng.choice(["high", "moderate", "none"]) if screened else None,
                "score": rng.randrange(0, 40) if screened else 0,
                "case_type": facts["trafficking_type"] if facts else "unknown",
                "assignee_id": rng.choice(self.users) if screened and self.users else None,
                "deadline": deadline,
                "screening": {"facts": facts, "indicators": []} if facts else None,
                "resolution_code": rng.choice(RESOLUTIONS) if closed else None,
                "anonymous": rng.random() < 0.6, "passphrase_hash": None,
                "created_at": created, "updated_at": created + (self.now - created) / 2,
                "referred_at": created + timedelta(hours=2) if state == "referred" else None,
                "closed_at": created + timedelta(days=3) if closed else None,
                "purged_at": None, "version": 1,
            })
            channel = _pick(rng, CHANNELS)[0]
            signals.append({
                "case_id": case_id, "channel": channel, "status_sequence": -1,
                "language": "es" if rng.random() < 0.2 else "en",
                "narrative": rng.choice(self.narratives),
                "location": rng.choice(self.locations) if rng.random() < 0.7 else None,
                "anonymous": cases[-1]["anonymous"], "created_at": created,
                "heard_from": _pick(rng, HEARD_FROM)[0],
                "updated_at": created,
            })
            if state in ("pending_approval", "referred"):
                cases[-1]["deadline"] = None
            if state in REFERRAL_STATES_BY_CASE and (not closed or rng.random() < 0.3):
                for agency, rule in rng.sample(AGENCIES, rng.choice([1, 1, 2])):
                    ref_state = _pick(rng, REFERRAL_STATES_BY_CASE[state])[0]
                    referral_id = self.next_referral
                    self.next_referral += 1
                    due = created + timedelta(hours=24 if rank < 2 else 72)
                    if ref_state in AWAITING_AGENCY and state != "closed":
                        current = cases[-1]["deadline"]
                        cases[-1]["deadline"] = min(due, current) if current else due
                    referrals.append({
                        "id": referral_id, "case_id": case_id, "agency_code": agency,
                        "state": ref_state, "mandatory": rule == "minor_commercial_sex",
                        "deadline": due,
                        "rule": rule, "reason": f"{agency}: {rule.replace('_', ' ')}",
                        "legal_basis": json.dumps(
                            {"type": "mandatory", "rule": rule}
                            if rule == "minor_commercial_sex"
                            else {"type": "consent", "scope": "law_enforcement",
                                  "given_by": "victim", "recorded_by": "seed-operator-1"}
                        ),
                        "idempotency_key": f"seed-{referral_id}",
                        "attempts": 1 if ref_state != "pending" else 0,
                        "created_at": created, "updated_at": created,
                        "queued_at": created if ref_state != "pending" else None,
                        **_referral_times(rng, ref_state, created),
                        "version": 1,
                    })
        return cases, signals, referrals


def _facts(rng: random.Random, priority: str) -> dict[str, Any]:
    """Screening facts as a hotline records them: type, venue, state, the victim."""
    ttype = _pick(rng, TYPES)[0]
    ages = _pick(rng, AGES)[0]
    age = rng.randint(*ages) if ages else None
    return {
        "imminent_danger": priority == "emergency", "trafficking_type": ttype,
        "venue": _pick(rng, VENUES[ttype])[0], "state": _pick(rng, STATES)[0] or None,
        "victim_age": age, "victim_minor": None if age is None else age < 18,
        "foreign_national": _pick(rng, FOREIGN)[0],
        "caller_type": rng.choice(["victim", "community_member", "community_member",
                                   "service_provider", "law_enforcement", "other"]),
        "request_type": rng.choice(["tip", "tip", "referral", "crisis", "information"]),
    }


def _referral_times(rng: random.Random, state: str, created: datetime) -> dict[str, Any]:
    """When it was sent, taken up and answered, and the outcome an agency reported."""
    out: dict[str, Any] = dict.fromkeys(
        ("sent_at", "acknowledged_at", "answered_at", "outcome"))  # executemany: same keys
    if state in ("pending", "queued"):
        return out
    out["sent_at"] = created + timedelta(minutes=rng.randint(5, 600))
    if state in ("acknowledged", "accepted", "declined"):
        out["acknowledged_at"] = out["sent_at"] + timedelta(hours=rng.expovariate(1 / 20))
    if state in ("accepted", "declined"):
        out["answered_at"] = out["acknowledged_at"] + timedelta(hours=rng.expovariate(1 / 60))
    if state == "accepted" and rng.random() < 0.6:
        status = _pick(rng, OUTCOMES)[0]
        ordered = rng.choice([0, 0, 0, 5000, 25_000, 120_000]) if status == "convicted" else 0
        out["outcome"] = {"investigation_status": status, "restitution_ordered": ordered or None,
                          "restitution_paid": round(ordered * rng.random(), 2) or None}
    return out


def _complete(columns: list[Any], row: dict[str, Any]) -> list[Any]:
    """Values for ``columns``; a column others add later gets its scalar default."""
    out = []
    for column in columns:
        if column.name in row:
            value = row[column.name]
            out.append(json.dumps(value) if isinstance(value, dict) else value)
            continue
        default = column.default
        if default is not None and default.is_scalar:
            out.append(default.arg)
        elif default is not None and not column.nullable:
            out.append(row.get("created_at") or datetime.now(UTC))
        else:
            out.append(None)
    return out


def _copy(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = [c for c in table.columns if c.name != "id" or "id" in rows[0]]
    names = ", ".join(f'"{c.name}"' for c in columns)
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(_complete(columns, row))


def _executemany(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(table.insert(), [
            {**r, **{k: json.loads(v) for k, v in r.items() if k == "legal_basis"}} for r in rows
        ])


def _seed_users(conn: Connection, users: Table, count: int = 5) -> list[int]:
    now = datetime.now(UTC)
    found = list(conn.scalars(select(users.c.id).where(users.c.username.like("seed-operator-%"))))
    if found:
        return found
    conn.execute(users.insert(), [
        {"username": f"seed-operator-{i}", "role": "operator", "active": True,
         "session_epoch": 0, "created_at": now}
        for i in range(1, count + 1)
    ])
    return list(conn.scalars(select(users.c.id).where(users.c.username.like("seed-operator-%"))))


def seed_cases(count: int, batch: int = 20_000, seed: int = 7) -> dict[str, int]:
    """Add ``count`` cases (with signals and referrals); returns what was written."""
    engine = runtime().engine
    tables = Base.metadata.tables
    cases, signals, referrals = tables["cases"], tables["signals"], tables["referrals"]
    postgres = engine.dialect.name == "postgresql"
    write = _copy if postgres else _executemany
    written = {"cases": 0, "signals": 0, "referrals": 0}
    with engine.begin() as conn:
        users = _seed_users(conn, tables["users"])
        start = (conn.scalar(select(func.max(cases.c.id))) or 0) + 1
        ref_start = (conn.scalar(select(func.max(referrals.c.id))) or 0) + 1
    seeder = Seeder(seed + start, postgres, start, ref_start, users)
    for size in _chunks(count, batch):
        case_rows, signal_rows, referral_rows = seeder.batch(size)
        with engine.begin() as conn:
            write(conn, cases, case_rows)
            write(conn, signals, signal_rows)
            write(conn, referrals, referral_rows)
        written["cases"] += len(case_rows)
        written["signals"] += len(signal_rows)
        written["referrals"] += len(referral_rows)
    if postgres:
        with engine.begin() as conn:
            for table in ("cases", "referrals"):
                conn.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                ))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE cases, signals, referrals"))
    return written


def _chunks(total: int, size: int) -> Iterator[int]:
    while total > 0:
        yield min(size, total)
        total -= size


@click.command("seed")
@click.option("--cases", "count", type=click.IntRange(min=1), required=True,
              help="How many cases to add.")
@click.option("--batch", type=click.IntRange(min=100), default=20_000, show_default=True)
@with_appcontext
def seed_command(count: int, batch: int) -> None:
    """Bulk-load made-up cases, signals and referrals (for benchmarks and demos)."""
    started = time.perf_counter()
    written = seed_cases(count, batch)
    elapsed = time.perf_counter() - started
    click.echo(
        f"seeded {written['cases']} cases, {written['signals']} signals, "
        f"{written['referrals']} referrals in {elapsed:.1f} s "
        f"({written['cases'] / elapsed:,.0f} cases/s)"
    )


def create_app() -> Flask:
    """The real app plus ``seed``; the production CLI does not carry benchmark tools."""
    from config.app import create_app as create_hotline_app

    app = create_hotline_app()
    app.cli.add_command(seed_command)
    return app
