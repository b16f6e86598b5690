"""The de-identified research extract: one row per case, per victim and per referral.

Shaped on the Bureau of Justice Statistics' Human Trafficking Reporting System (HTRS)
incident / victim elements where they apply. Nothing free-text and no identifier ever
leaves: every released value is a code from a closed list (the schema's ``enum``), a
count, a whole number of days, or money rounded to the thousand. Dates become the
month, ages a band, places the state, and each row's quasi-identifiers are made
k-anonymous (``workflows.disclosure``). Rows are read in batches, in two passes (count
the combinations; then write the rows), so memory does not grow with the number of
cases. No encrypted column is ever selected.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import DateTime, column, func, select, table
from sqlalchemy.orm import Session

from workflows.campaigns import HEARD_FROM
from workflows.deadlines import aware
from workflows.disclosure import (
    AGE_BANDS,
    ANY,
    LADDER,
    QI,
    STATES,
    KAnonymity,
    release,
)
from workflows.machines import AWAITING_AGENCY, CASE_STATES, REFERRAL_STATES
from workflows.models import Case, Referral
from workflows.outcomes import read_outcome
from workflows.screening import LEVELS, REQUEST_TYPES, TRAFFICKING_TYPES
from workflows.vocabulary import CALLER_TYPES

BATCH = 1000
CHANNELS = ("voice", "sms", "whatsapp", "chat", "web", "operator")
CITIZENSHIP_GROUPS = ("us_citizen_or_resident", "foreign_national", "unknown")
# Signals are intake's table; the domain reads the few columns it counts by name.
SIGNALS = table(
    "signals", column("id"), column("case_id"), column("channel"), column("heard_from"),
    column("caller_type"), column("created_at", DateTime(timezone=True)),
)
_CODE = re.compile(r"[A-Za-z0-9_]{1,64}")


class ExportError(ValueError):
    """A bad request for an extract (dates): the caller gets a 4xx naming it."""


@dataclass(frozen=True)
class Vocabulary:
    """The closed lists configuration adds: venues, agencies, routing rules."""

    venues: tuple[str, ...]
    agencies: tuple[str, ...]
    rules: tuple[str, ...]

    @classmethod
    def from_catalogs(cls, catalogs: dict[str, Any]) -> Vocabulary:
        return cls(
            venues=tuple(catalogs["indicators"].venues),
            agencies=tuple(catalogs["agencies"]),
            rules=tuple(rule.name for rule in catalogs["routing"].rules),
        )


@dataclass(frozen=True)
class Field:
    """One column: its Table Schema type, meaning, closed list and HTRS element."""

    name: str
    type: str
    description: str
    enum: tuple[str, ...] | None = None
    htrs: str = ""
    quasi_identifier: bool = False


def _qi_fields(vocab: Vocabulary) -> list[Field]:
    periods = "YYYY-MM, or YYYY-Qn / YYYY / * when generalised"
    return [
        Field("state", "string", "US state or territory of the incident (USPS code); a census "
              "region or * when generalised", (*STATES, "northeast", "midwest", "south", "west",
                                               "territories", "unknown", ANY),
              "Incident location (state)", True),
        Field("period", "string", f"Month the case was opened ({periods})",
              htrs="Incident date (month)", quasi_identifier=True),
        Field("age_band", "string", "Victim age band in years; minor/adult/unknown or * when "
              "generalised", (*AGE_BANDS, "minor", "adult", "unknown", ANY),
              "Victim age", True),
        Field("trafficking_type", "string", "Type of trafficking", (*TRAFFICKING_TYPES, ANY),
              "Incident type (sex / labor)", True),
        Field("venue", "string", "Venue or industry (25-type typology); * when generalised",
              (*vocab.venues, "unknown", ANY), "Incident venue", True),
        Field("citizenship_group", "string", "Victim citizenship group; * when generalised",
              (*CITIZENSHIP_GROUPS, ANY), "Victim citizenship", True),
        Field("disclosure_level", "string", "How far the quasi-identifiers were generalised "
              "for k-anonymity (see the package's suppression notes)",
              tuple(step.name for step in LADDER)),
    ]


def _outcome_fields() -> list[Field]:
    return [
        Field("investigation", "boolean", "An investigation was opened", htrs="Investigation"),
        Field("continued_presence", "boolean", "Continued Presence granted (ICE)"),
        Field("letter", "boolean", "HHS certification or eligibility letter issued"),
        Field("visa_certified", "boolean", "T visa endorsement or U visa certification signed"),
        Field("restitution_ordered", "integer", "Restitution ordered, USD rounded to 1,000",
              htrs="Restitution ordered"),
        Field("restitution_paid", "integer", "Restitution paid, USD rounded to 1,000"),
    ]


def schemas(vocab: Vocabulary) -> dict[str, list[Field]]:
    """The three tables' columns: the package's schema and its data dictionary."""
    key = Field("case_key", "string", "Random key of the case, new in every extract (links "
                "the three tables; never a database id or reference)")
    return {
        "cases": [
            key, *_qi_fields(vocab),
            Field("channel", "string", "How the first contact came in", CHANNELS,
                  "Source of the report"),
            Field("heard_from", "string", "How the first contact heard of the hotline",
                  (*HEARD_FROM, "unknown")),
            Field("caller_type", "string", "Who first contacted the hotline",
                  (*CALLER_TYPES, "unknown"), "Reporting party"),
            Field("request_type", "string", "What the contact asked for",
                  (*REQUEST_TYPES, "unknown")),
            Field("screening_level", "string", "Screening level against the legal definition",
                  (*LEVELS, "unscreened"), "Confirmed / suspected status"),
            Field("priority", "string", "Priority given at screening",
                  ("emergency", "urgent", "routine")),
            Field("case_state", "string", "Where the case is in its lifecycle", tuple(CASE_STATES)),
            Field("victims", "integer", "Number of victims recorded", htrs="Number of victims"),
            Field("contacts", "integer", "Number of contacts (calls, texts, tips) on the case"),
            Field("referrals_made", "integer", "Referrals made to agencies"),
            Field("days_to_referral", "integer", "Whole days from intake to the first referral"),
            Field("days_to_close", "integer", "Whole days from intake to closing"),
            *_outcome_fields(),
        ],
        "victims": [
            key, *_qi_fields(vocab),
            Field("victim_number", "integer", "1, 2, … within the case"),
            Field("minor", "boolean", "Under 18 (empty when the age band was generalised away)",
                  htrs="Victim age under 18"),
        ],
        "referrals": [
            key, *_qi_fields(vocab),
            Field("agency", "string", "Agency referred to", vocab.agencies, "Referral agency"),
            Field("basis", "string", "Legal basis of the disclosure", ("mandatory", "consent")),
            Field("rule", "string", "Routing rule that called for the referral",
                  (*vocab.rules, "other")),
            Field("referral_state", "string", "Where the referral is", tuple(REFERRAL_STATES)),
            Field("days_to_send", "integer", "Whole days from the referral to its delivery"),
            Field("days_to_answer", "integer", "Whole days from delivery to the agency's answer"),
            Field("deadline_met", "boolean", "Answered (or, while waiting, still) within its "
                  "deadline; empty without a deadline"),
            Field("outcome_known", "boolean", "The agency reported an outcome"),
            *_outcome_fields(),
        ],
    }


# --- reading the database --------------------------------------------------------------


def _code(value: Any, allowed: Sequence[str] | frozenset[str], default: str = "unknown") -> str:
    return value if isinstance(value, str) and value in allowed else default


_STATES = frozenset(STATES)
_TYPES = frozenset(TRAFFICKING_TYPES)
_SOURCES = frozenset(HEARD_FROM)


def age_band(age: Any, minor: Any) -> str:
    """The HTRS-style band of an age in years (or minor/adult/unknown when only that is known)."""
    if isinstance(age, int) and not isinstance(age, bool) and 0 <= age < 130:
        bounds = (12, 15, 18, 25, 35, 45, 55)
        return next((band for band, top in zip(AGE_BANDS, bounds, strict=False) if age < top),
                    AGE_BANDS[-1])
    if minor is True:
        return "minor"
    if minor is False:
        return "adult"
    return "unknown"


def citizenship(foreign: Any) -> str:
    if foreign is True:
        return "foreign_national"
    if foreign is False:
        return "us_citizen_or_resident"
    return "unknown"


def _days(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, (aware(end) - aware(start)).days)  # type: ignore[operator]


def _thousands(amount: float) -> int:
    return round(amount / 1000.0) * 1000


@dataclass
class ReferralRecord:
    agency: str
    mandatory: bool
    rule: str
    state: str
    created_at: datetime
    sent_at: datetime | None
    answered_at: datetime | None
    deadline: datetime | None
    outcome: dict[str, Any] | None
    taken_up: datetime | None  # acknowledged, else answered


@dataclass
class CaseRecord:
    """What the extract knows of one case: codes, dates and counts, no free text."""

    id: int
    month: str
    state: str
    trafficking_type: str
    venue: str
    victims: list[tuple[str, str]]  # (age band, citizenship group) per victim
    channel: str
    heard_from: str
    caller_type: str
    request_type: str
    level: str
    priority: str
    case_state: str
    contacts: int
    days_to_referral: int | None
    days_to_close: int | None
    referrals: list[ReferralRecord] = field(default_factory=list)

    def qi(self, victim: tuple[str, str] | None = None) -> QI:
        band, group = victim or self.principal
        return (self.state, self.month, band, self.trafficking_type, self.venue, group)

    @property
    def principal(self) -> tuple[str, str]:
        """The case's victim for the case row: the youngest known, else the first."""
        if not self.victims:
            return ("unknown", "unknown")
        ranked = [v for v in self.victims if v[0] in AGE_BANDS] or self.victims
        return min(ranked, key=lambda v: AGE_BANDS.index(v[0]) if v[0] in AGE_BANDS else 0)


def date_range(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00 UTC, the day after end 00:00 UTC); a reversed range is refused."""
    if end < start:
        raise ExportError("'to' is before 'from'")
    if end >= date.max:
        raise ExportError("'to' must be a real day before 9999-12-31")
    return (datetime.combine(start, time(), UTC),
            datetime.combine(end + timedelta(days=1), time(), UTC))


def count_cases(session: Session, start: datetime, end: datetime) -> int:
    return int(session.scalar(select(func.count()).select_from(Case).where(
        Case.created_at >= start, Case.created_at < end)) or 0)


def case_records(
    session: Session, start: datetime, end: datetime, vocab: Vocabulary
) -> Iterator[CaseRecord]:
    """Every case opened in [start, end), in id order, read in batches."""
    query = (
        select(Case.id, Case.created_at, Case.state, Case.priority, Case.level, Case.case_type,
               Case.screening, Case.referred_at, Case.closed_at)
        .where(Case.created_at >= start, Case.created_at < end)
        .order_by(Case.id)
        .execution_options(yield_per=BATCH)
    )
    for partition in session.execute(query).partitions():
        ids = [row.id for row in partition]
        first: dict[int, tuple[str, str, str]] = {}
        contacts: dict[int, int] = {}
        signal_rows = session.execute(
            select(SIGNALS.c.case_id, SIGNALS.c.channel, SIGNALS.c.heard_from,
                   SIGNALS.c.caller_type)
            .where(SIGNALS.c.case_id.in_(ids)).order_by(SIGNALS.c.id)
        ).all()
        for case_id, channel, heard, caller in signal_rows:
            contacts[case_id] = contacts.get(case_id, 0) + 1
            first.setdefault(case_id, (channel, heard, caller))
        referrals: dict[int, list[ReferralRecord]] = {}
        for r in session.execute(
            select(Referral.case_id, Referral.agency_code, Referral.mandatory, Referral.rule,
                   Referral.state, Referral.created_at, Referral.sent_at, Referral.answered_at,
                   Referral.deadline, Referral.outcome, Referral.acknowledged_at)
            .where(Referral.case_id.in_(ids)).order_by(Referral.id)
        ):
            referrals.setdefault(r.case_id, []).append(ReferralRecord(
                _code(r.agency_code, vocab.agencies, "other"), bool(r.mandatory),
                _code(r.rule, vocab.rules, "other"), r.state, r.created_at, r.sent_at,
                r.answered_at, r.deadline, r.outcome, r.acknowledged_at or r.answered_at))
        for row in partition:
            yield _record(row, first, contacts, referrals, vocab)


def _record(row: Any, first: dict[int, tuple[str, str, str]], contacts: dict[int, int],
            referrals: dict[int, list[ReferralRecord]], vocab: Vocabulary) -> CaseRecord:
    screening = row.screening or {}
    facts = screening.get("facts") or {}
    channel, heard, caller = first.get(row.id, (None, None, None))
    created = aware(row.created_at)
    assert created is not None
    victims = [(age_band(facts.get("victim_age"), facts.get("victim_minor")),
                citizenship(facts.get("foreign_national")))] if screening else []
    ttype = facts.get("trafficking_type") or row.case_type
    return CaseRecord(
        id=row.id,
        month=f"{created.year:04d}-{created.month:02d}",
        state=_code(str(facts.get("state") or "").upper(), _STATES),
        trafficking_type=_code(ttype, _TYPES),
        venue=_code(facts.get("venue"), vocab.venues),
        victims=victims,
        channel=_code(channel, CHANNELS),
        heard_from=_code(heard, _SOURCES),
        caller_type=_code(facts.get("caller_type") or caller, CALLER_TYPES),
        request_type=_code(facts.get("request_type"), REQUEST_TYPES),
        level=_code(row.level, LEVELS, "unscreened"),
        priority=_code(row.priority, ("emergency", "urgent", "routine"), "routine"),
        case_state=_code(row.state, CASE_STATES),
        contacts=contacts.get(row.id, 0),
        days_to_referral=_days(row.created_at, row.referred_at),
        days_to_close=_days(row.created_at, row.closed_at),
        referrals=referrals.get(row.id, []),
    )


# --- the extract ------------------------------------------------------------------------


@dataclass
class Extract:
    """Decisions from the first passes; ``rows`` then streams the released rows."""

    k: int
    cases: KAnonymity
    victims: KAnonymity
    referrals: KAnonymity
    now: datetime

    def suppression(self) -> dict[str, dict[str, int]]:
        """Per table: distinct cases released at each rung of the ladder, and dropped."""
        return {"cases": self.cases.summary(), "victims": self.victims.summary(),
                "referrals": self.referrals.summary()}


class _Dependent:
    """Rows that follow a case (victims, referrals), counted by (row combination, case
    combination) until the case table is resolved and each case's rung is known."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.groups: dict[tuple[QI, QI], tuple[int, set[int]]] = {}
        self.case: int | None = None
        self.seen: set[tuple[QI, QI]] = set()  # keys the current case already counted

    def add(self, qi: QI, case_qi: QI, case_id: int) -> None:
        key = (qi, case_qi)
        if case_id != self.case:
            self.case, self.seen = case_id, set()
        if key in self.seen:
            return
        self.seen.add(key)
        count, ids = self.groups.get(key, (0, set()))
        if count + 1 < self.k:
            ids.add(case_id)
        else:
            ids = set()
        self.groups[key] = (count + 1, ids)

    def into(self, table: KAnonymity, cases: KAnonymity) -> None:
        for (qi, case_qi), (count, ids) in self.groups.items():
            table.add_group(qi, cases.level_of(case_qi), count, ids)
        table.resolve()


def plan_extract(records: Any, k: int, now: datetime) -> Extract:
    """The first pass: count every combination and decide each one's rung.

    ``records`` is a callable giving a fresh iterator of ``CaseRecord`` each time.
    Victims and referrals are counted against their case's combination, so once the
    cases are resolved each is floored at its case's rung without another pass.
    """
    extract = Extract(k, KAnonymity(k), KAnonymity(k), KAnonymity(k), now)
    victims, referrals = _Dependent(k), _Dependent(k)
    for record in records():
        case_qi = record.qi()
        extract.cases.add(case_qi, record.id)
        for victim in record.victims:
            victims.add(record.qi(victim), case_qi, record.id)
        if record.referrals:
            referrals.add(case_qi, case_qi, record.id)
    extract.cases.resolve()
    victims.into(extract.victims, extract.cases)
    referrals.into(extract.referrals, extract.cases)
    return extract


def _released(qi: QI, level: int) -> dict[str, Any] | None:
    shown = release(qi, level)
    if shown is None:
        return None
    names = ("state", "period", "age_band", "trafficking_type", "venue", "citizenship_group")
    return {**dict(zip(names, shown, strict=True)), "disclosure_level": LADDER[level].name}


def _outcomes(figures: Any) -> dict[str, Any]:
    return {
        "investigation": figures.investigation,
        "continued_presence": figures.continued_presence,
        "letter": figures.letter,
        "visa_certified": figures.visa_certified,
        "restitution_ordered": _thousands(figures.restitution_ordered),
        "restitution_paid": _thousands(figures.restitution_paid),
    }


def _sum_outcomes(referrals: list[ReferralRecord]) -> dict[str, Any]:
    total = {"investigation": False, "continued_presence": False, "letter": False,
             "visa_certified": False, "restitution_ordered": 0.0, "restitution_paid": 0.0}
    for referral in referrals:
        figures = read_outcome(referral.outcome)
        for flag in ("investigation", "continued_presence", "letter", "visa_certified"):
            total[flag] = total[flag] or getattr(figures, flag)
        total["restitution_ordered"] += figures.restitution_ordered
        total["restitution_paid"] += figures.restitution_paid
    total["restitution_ordered"] = _thousands(total["restitution_ordered"])
    total["restitution_paid"] = _thousands(total["restitution_paid"])
    return total


def rows(extract: Extract, records: Iterator[CaseRecord]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Pass three: ``(table, row)`` for every released row, in case order."""
    for record in records:
        level = extract.cases.level_of(record.qi())
        shown = _released(record.qi(), level)
        if shown is None:
            continue  # the case is dropped, and with it its victims and referrals
        key = secrets.token_hex(6)
        yield "cases", {
            "case_key": key, **shown,
            "channel": record.channel, "heard_from": record.heard_from,
            "caller_type": record.caller_type, "request_type": record.request_type,
            "screening_level": record.level, "priority": record.priority,
            "case_state": record.case_state, "victims": len(record.victims),
            "contacts": record.contacts, "referrals_made": len(record.referrals),
            "days_to_referral": record.days_to_referral, "days_to_close": record.days_to_close,
            **_sum_outcomes(record.referrals),
        }
        for number, victim in enumerate(record.victims, start=1):
            vshown = _released(record.qi(victim), extract.victims.level_of(record.qi(victim),
                                                                            level))
            if vshown is not None:
                band = vshown["age_band"]
                minor = None if band in ("unknown", ANY) else band in ("minor", *AGE_BANDS[:3])
                yield "victims", {"case_key": key, **vshown, "victim_number": number,
                                  "minor": minor}
        rshown = (_released(record.qi(), extract.referrals.level_of(record.qi(), level))
                  if record.referrals else None)
        if rshown is None:
            continue
        for referral in record.referrals:
            figures = read_outcome(referral.outcome)
            yield "referrals", {
                "case_key": key, **rshown,
                "agency": referral.agency,
                "basis": "mandatory" if referral.mandatory else "consent",
                "rule": referral.rule, "referral_state": referral.state,
                "days_to_send": _days(referral.created_at, referral.sent_at),
                "days_to_answer": _days(referral.sent_at, referral.answered_at),
                "deadline_met": deadline_met(referral.state, referral.deadline,
                                             referral.taken_up, extract.now),
                "outcome_known": figures.known, **_outcomes(figures),
            }


def deadline_met(state: str, deadline: datetime | None, taken_up: datetime | None,
                 now: datetime) -> bool | None:
    """Was the referral taken up (acknowledged or answered) by its deadline?

    None while it is still undecided (waiting, not yet due), withdrawn, or has no deadline.
    """
    due = aware(deadline)
    if due is None or state == "withdrawn":
        return None
    if taken_up is not None:
        return aware(taken_up) <= due  # type: ignore[operator]
    if state in AWAITING_AGENCY:
        return False if now > due else None
    return None

