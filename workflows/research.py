"""The de-identified research extract: one row per case, per victim and per referral.

Shaped on the Bureau of Justice Statistics' Human Trafficking Reporting System (HTRS)
incident / victim elements where they apply. Nothing free-text and no identifier ever
leaves: every released value is a code from a closed list (the schema's ``enum``), a
count, a whole number of days, or money rounded to the thousand. Dates become the
month, ages a band, places the state, and each row's quasi-identifiers are made
k-anonymous (``workflows.disclosure``). The database is read once, by three streamed
Core selects merged in case order (``case_records``): each case's combination is counted
and its rows' cells spooled to a temporary file; once the combinations are resolved
the rows are written from the spool. Memory holds the counts of distinct combinations,
never the rows. No narrative, name or place column is ever selected; of the encrypted
columns only the referral's outcome is read, as the outcome figures need it.
"""

from __future__ import annotations

import pickle
import re
import secrets
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import IO, Any

from sqlalchemy import DateTime, column, select, table
from sqlalchemy.orm import Session

from workflows.campaigns import HEARD_FROM
from workflows.deadlines import aware
from workflows.disclosure import (
    AGE_BANDS,
    ANY,
    DROPPED,
    LADDER,
    QI,
    STATES,
    Codebook,
    KAnonymity,
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
    if (start.tzinfo is None) is not (end.tzinfo is None):  # SQLite's naive and a zoned one
        start, end = aware(start), aware(end)
    return max(0, (end - start).days)  # type: ignore[operator]


def _thousands(amount: float) -> int:
    return round(amount / 1000.0) * 1000


@dataclass(slots=True)
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


@dataclass(slots=True)
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


def case_records(
    session: Session, start: datetime, end: datetime, vocab: Vocabulary
) -> Iterator[CaseRecord]:
    """Every case opened in [start, end), in id order, in constant memory.

    Three Core selects stream side by side (server-side cursors on PostgreSQL): the
    cases by id, and their signals and referrals by (case, id); they are merged here,
    so nothing is loaded through the ORM and no query is issued per case or per batch.
    Only the columns the extract uses are read: no narrative, location or name is ever
    selected (so never decrypted); the referral's outcome is, as the figures need it.
    """
    cases, referrals = Case.__table__, Referral.__table__
    in_range = select(cases.c.id).where(cases.c.created_at >= start, cases.c.created_at < end)
    stream = {"stream_results": True, "yield_per": BATCH}
    conn = session.connection()
    case_rows = conn.execute(
        select(cases.c.id, cases.c.created_at, cases.c.state, cases.c.priority, cases.c.level,
               cases.c.case_type, cases.c.screening, cases.c.referred_at, cases.c.closed_at)
        .where(cases.c.created_at >= start, cases.c.created_at < end)
        .order_by(cases.c.id).execution_options(**stream))
    signal_rows = conn.execute(
        select(SIGNALS.c.case_id, SIGNALS.c.channel, SIGNALS.c.heard_from, SIGNALS.c.caller_type)
        .where(SIGNALS.c.case_id.in_(in_range))
        .order_by(SIGNALS.c.case_id, SIGNALS.c.id).execution_options(**stream))
    referral_rows = conn.execute(
        select(referrals.c.case_id, referrals.c.agency_code, referrals.c.mandatory,
               referrals.c.rule, referrals.c.state, referrals.c.created_at, referrals.c.sent_at,
               referrals.c.answered_at, referrals.c.deadline, referrals.c.outcome,
               referrals.c.acknowledged_at)
        .where(referrals.c.case_id.in_(in_range))
        .order_by(referrals.c.case_id, referrals.c.id).execution_options(**stream))
    try:
        signals = _by_case(signal_rows)
        by_case = _by_case(referral_rows)
        for row in case_rows:
            found = signals.take(row[0])
            first = found[0] if found else (None, None, None, None)
            refs = [ReferralRecord(
                _code(agency, vocab.agencies, "other"), bool(mandatory),
                _code(rule, vocab.rules, "other"), state, created, sent, answered, deadline,
                outcome, acknowledged or answered)
                for (_, agency, mandatory, rule, state, created, sent, answered, deadline,
                     outcome, acknowledged) in by_case.take(row[0])]
            yield _record(row, first[1], first[2], first[3], len(found), refs, vocab)
    finally:
        for result in (case_rows, signal_rows, referral_rows):
            result.close()


class _by_case:  # noqa: N801 - read as a function: the rows of one case after another
    """Hands out the rows of one case at a time from a stream ordered by case id."""

    def __init__(self, rows: Any) -> None:
        self._rows = iter(rows)
        self._next = next(self._rows, None)

    def take(self, case_id: int) -> list[Any]:
        out = []
        row = self._next
        while row is not None and row[0] <= case_id:
            if row[0] == case_id:  # rows of a case outside the stream are skipped
                out.append(row)
            row = next(self._rows, None)
        self._next = row
        return out


def _record(row: Any, channel: str | None, heard: str | None, caller: str | None,
            contacts: int, referrals: list[ReferralRecord], vocab: Vocabulary) -> CaseRecord:
    case_id, created, state, priority, level, case_type, screening, referred, closed = row
    facts = (screening or {}).get("facts") or {}
    if created.tzinfo is not None and created.utcoffset():  # a server not set to UTC
        created = created.astimezone(UTC)
    victims = [(age_band(facts.get("victim_age"), facts.get("victim_minor")),
                citizenship(facts.get("foreign_national")))] if screening else []
    ttype = facts.get("trafficking_type") or case_type
    return CaseRecord(
        id=case_id,
        month=_MONTHS.get((created.year, created.month))
        or _MONTHS.setdefault((created.year, created.month),
                              f"{created.year:04d}-{created.month:02d}"),
        state=_code(str(facts.get("state") or "").upper(), _STATES),
        trafficking_type=_code(ttype, _TYPES),
        venue=_code(facts.get("venue"), vocab.venues),
        victims=victims,
        channel=_code(channel, CHANNELS),
        heard_from=_code(heard, _SOURCES),
        caller_type=_code(facts.get("caller_type") or caller, CALLER_TYPES),
        request_type=_code(facts.get("request_type"), REQUEST_TYPES),
        level=_code(level, LEVELS, "unscreened"),
        priority=_code(priority, ("emergency", "urgent", "routine"), "routine"),
        case_state=_code(state, CASE_STATES),
        contacts=contacts,
        days_to_referral=_days(created, referred),
        days_to_close=_days(created, closed),
        referrals=referrals,
    )


_MONTHS: dict[tuple[int, int], str] = {}  # one string per month, shared by every record


# --- the extract ------------------------------------------------------------------------


OUTCOME_COLUMNS = ("investigation", "continued_presence", "letter", "visa_certified",
                   "restitution_ordered", "restitution_paid")
# Each table's columns after the key and the released quasi-identifiers, in the order
# ``rows`` writes them (``datapackage`` checks them against ``schemas``).
TAIL_COLUMNS = {
    "cases": ("channel", "heard_from", "caller_type", "request_type", "screening_level",
              "priority", "case_state", "victims", "contacts", "referrals_made",
              "days_to_referral", "days_to_close", *OUTCOME_COLUMNS),
    "victims": ("victim_number", "minor"),
    "referrals": ("agency", "basis", "rule", "referral_state", "days_to_send",
                  "days_to_answer", "deadline_met", "outcome_known", *OUTCOME_COLUMNS),
}
_RUNGS = [step.name for step in LADDER]
_MINOR = frozenset({"minor", *AGE_BANDS[:3]})


@dataclass
class Extract:
    """Decisions from the counting passes, and the spool ``rows`` writes from."""

    k: int
    cases: KAnonymity
    victims: KAnonymity
    referrals: KAnonymity
    now: datetime
    spool: IO[bytes]
    codebook: Codebook

    def suppression(self) -> dict[str, dict[str, int]]:
        """Per table: distinct cases released at each rung of the ladder, and dropped."""
        return {"cases": self.cases.summary(), "victims": self.victims.summary(),
                "referrals": self.referrals.summary()}


def _cell(value: Any) -> Any:
    """A CSV cell: empty for None, true/false for booleans."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _outcome_cells(figures: Any) -> list[Any]:
    return [_cell(figures.investigation), _cell(figures.continued_presence),
            _cell(figures.letter), _cell(figures.visa_certified),
            _thousands(figures.restitution_ordered), _thousands(figures.restitution_paid)]


# What the spool holds per case: its combination and its victims' (packed), and the
# cells of its case row and of each referral row after the quasi-identifiers. No id.
Prepared = tuple[int, tuple[int, ...], list[Any], list[list[Any]]]


_FLAGS = ("investigation", "continued_presence", "letter", "visa_certified")
_NO_OUTCOMES = ["false", "false", "false", "false", 0, 0]  # a case without referrals


def _prepare(record: CaseRecord, case_key: int, victim_keys: tuple[int, ...],
             now: datetime) -> Prepared:
    """Everything but the quasi-identifiers, made once in the database pass."""
    referral_cells = []
    outcome_cells = _NO_OUTCOMES
    if record.referrals:
        flags = dict.fromkeys(_FLAGS, False)
        ordered = paid = 0.0
        for r in record.referrals:
            figures = read_outcome(r.outcome)
            for flag in _FLAGS:
                flags[flag] = flags[flag] or getattr(figures, flag)
            ordered += figures.restitution_ordered
            paid += figures.restitution_paid
            referral_cells.append([
                r.agency, "mandatory" if r.mandatory else "consent", r.rule, r.state,
                _cell(_days(r.created_at, r.sent_at)), _cell(_days(r.sent_at, r.answered_at)),
                _cell(deadline_met(r.state, r.deadline, r.taken_up, now)),
                _cell(figures.known), *_outcome_cells(figures)])
        outcome_cells = [*(_cell(flags[flag]) for flag in _FLAGS), _thousands(ordered),
                         _thousands(paid)]
    case_cells = [
        record.channel, record.heard_from, record.caller_type, record.request_type,
        record.level, record.priority, record.case_state, len(record.victims),
        record.contacts, len(record.referrals), _cell(record.days_to_referral),
        _cell(record.days_to_close), *outcome_cells]
    return (case_key, victim_keys, case_cells, referral_cells)


def _spooled(spool: IO[bytes]) -> Iterator[Any]:
    spool.seek(0)
    while True:
        try:
            yield pickle.load(spool)  # noqa: S301 - our own temporary file, written above
        except EOFError:
            return


def plan_extract(records: Iterable[CaseRecord], k: int, now: datetime,
                 spool: IO[bytes]) -> Extract:
    """Read the database once: count the cases' combinations and spool what each case's
    rows need; then, cases resolved, count victims and referrals from a second, small
    spool of packed combinations.

    Victims and referrals are counted at their case's rung as a floor, so none is ever
    released finer than its case. ``spool`` is a binary temporary file: memory holds
    the counts of distinct combinations only, never the rows.
    """
    codebook = Codebook()
    extract = Extract(k, KAnonymity(k, codebook), KAnonymity(k, codebook),
                      KAnonymity(k, codebook), now, spool, codebook)
    pack = codebook.pack
    batch: list[Prepared] = []
    keys: list[int] = []  # per case: its key, its victims' count and keys, has referrals
    with tempfile.TemporaryFile() as key_spool:
        for number, record in enumerate(records):  # the spool's own numbering: no id kept
            case_key = pack(record.qi())
            principal = record.principal  # the case row's victim: its key is the case's
            victim_keys = tuple(case_key if v == principal else pack(record.qi(v))
                                for v in record.victims)
            extract.cases.add_key(case_key, number)
            batch.append(_prepare(record, case_key, victim_keys, now))
            keys += (case_key, len(victim_keys), *victim_keys, bool(record.referrals))
            if len(batch) == BATCH:
                pickle.dump(batch, spool, pickle.HIGHEST_PROTOCOL)
                pickle.dump(keys, key_spool, pickle.HIGHEST_PROTOCOL)
                batch, keys = [], []
        if batch:
            pickle.dump(batch, spool, pickle.HIGHEST_PROTOCOL)
            pickle.dump(keys, key_spool, pickle.HIGHEST_PROTOCOL)
        extract.cases.resolve()
        level_of, number = extract.cases.level_of_key, 0
        for keys in _spooled(key_spool):
            at = 0
            while at < len(keys):
                case_key, victims = keys[at], keys[at + 1]
                floor = level_of(case_key)
                for victim_key in keys[at + 2:at + 2 + victims]:
                    extract.victims.add_key(victim_key, number, floor)
                if keys[at + 2 + victims]:
                    extract.referrals.add_key(case_key, number, floor)
                at += 3 + victims
                number += 1
    extract.victims.resolve()
    extract.referrals.resolve()
    return extract


def rows(extract: Extract) -> Iterator[tuple[str, list[Any]]]:
    """The last pass, over the spool: ``(table, cells)`` for every released row, in case
    order; cells are the table's columns in ``schemas`` order."""
    cases, victims, referrals = extract.cases, extract.victims, extract.referrals
    unpack = extract.codebook.unpack
    for prepared in _spooled(extract.spool):
        keys = secrets.token_hex(6 * len(prepared))  # a random key per case, 12 hex digits
        for i, (case_key, victim_keys, case_cells, referral_cells) in enumerate(prepared):
            level = cases.level_of_key(case_key)
            if level == DROPPED:
                continue  # the case is dropped, and with it its victims and referrals
            case_qi = unpack(case_key)
            key = keys[12 * i:12 * i + 12]
            yield "cases", [key, *LADDER[level].apply(case_qi), _RUNGS[level], *case_cells]
            for number, victim_key in enumerate(victim_keys, start=1):
                vlevel = victims.level_of_key(victim_key, level)
                if vlevel != DROPPED:
                    vshown = LADDER[vlevel].apply(
                        case_qi if victim_key == case_key else unpack(victim_key))
                    band = vshown[2]
                    minor = "" if band in ("unknown", ANY) else _cell(band in _MINOR)
                    yield "victims", [key, *vshown, _RUNGS[vlevel], number, minor]
            if not referral_cells:
                continue
            rlevel = referrals.level_of_key(case_key, level)
            if rlevel == DROPPED:
                continue
            rshown = [key, *LADDER[rlevel].apply(case_qi), _RUNGS[rlevel]]
            for cells in referral_cells:
                yield "referrals", [*rshown, *cells]


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

