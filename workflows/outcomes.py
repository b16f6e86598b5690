"""What an agency's recorded outcome is, and what it means for the statistics: the one
mapping to extend.

Agencies record outcomes through ``record_outcome`` (``Referral.outcome``, a JSON dict).
Since issue 13 each outcome is typed — ``{"kind": "continued_presence", "status":
"granted", "date": "2026-03-02"}``, with an ``amount`` where money is involved — and a
referral keeps them all, in the order recorded, under ``"outcomes"``. Rows written
before then hold the investigation shape (``investigation_status``,
``restitution_ordered``, ``restitution_paid``, …). Both shapes are read here and nowhere
else, so the dashboard, the timeline, the public figures and the research export count
the same things; a new kind is one entry in ``OUTCOME_KINDS`` (and the agencies allowed
to record it in config/agencies.yaml).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from workflows.errors import InvalidInput


@dataclass(frozen=True)
class OutcomeKind:
    """One kind of outcome: the statuses it may take and what counts as done."""

    label: str
    statuses: tuple[str, ...]
    happened: frozenset[str]  # statuses after which the statistic counts it
    flag: str | None = None  # the OutcomeFigures flag it sets when it happened
    money: bool = False  # takes an amount (USD), required


_LETTER = ("requested", "issued", "denied")
OUTCOME_KINDS: dict[str, OutcomeKind] = {
    "investigation": OutcomeKind(
        "Investigation", ("opened", "charged", "convicted", "acquitted", "closed"),
        frozenset({"opened", "charged", "convicted", "acquitted", "closed"}), "investigation"),
    "continued_presence": OutcomeKind(
        "Continued presence (ICE)", ("requested", "granted", "denied"),
        frozenset({"granted"}), "continued_presence"),
    "certification_letter": OutcomeKind(
        "Certification letter (HHS, adult)", _LETTER, frozenset({"issued"}), "letter"),
    "eligibility_letter": OutcomeKind(
        "Eligibility letter (HHS, minor)", _LETTER, frozenset({"issued"}), "letter"),
    # Interim assistance comes before a minor's eligibility letter: not a letter of its own
    # in the statistics (issue 13 counts certification and eligibility letters).
    "interim_assistance": OutcomeKind(
        "Interim assistance (HHS, minor)", ("requested", "granted", "denied"),
        frozenset({"granted"})),
    "t_visa_endorsement": OutcomeKind(
        "T-visa endorsement (I-914 Supplement B)", ("requested", "signed", "declined"),
        frozenset({"signed"}), "visa_certified"),
    "u_visa_certification": OutcomeKind(
        "U-visa certification (I-918 Supplement B)", ("requested", "certified", "declined"),
        frozenset({"certified"}), "visa_certified"),
    "back_wages": OutcomeKind(
        "Back wages (DOL)", ("assessed", "paid"), frozenset({"assessed", "paid"}), money=True),
    "restitution": OutcomeKind(
        "Restitution", ("ordered", "paid"), frozenset({"ordered", "paid"}), money=True),
}
OUTCOME_STATUSES = tuple(dict.fromkeys(s for k in OUTCOME_KINDS.values() for s in k.statuses))
LETTER_KINDS = frozenset({"certification_letter", "eligibility_letter"})
# Kinds that mean an immigration-relief application: 8 U.S.C. 1367 protects the case.
RELIEF_KINDS = frozenset({"continued_presence", "t_visa_endorsement", "u_visa_certification"})
MAX_AMOUNT = 1e12
OUTCOME_FIELDS = ("kind", "status", "date", "amount", "notes")
MAX_NOTES = 5000

# Legacy (before issue 13) investigation statuses that mean an investigation was opened:
# Polaris's "led to an investigation".
INVESTIGATED = frozenset(
    {"open", "referred_for_prosecution", "charged", "convicted", "acquitted", "closed"}
)
FLAGS = ("investigation", "continued_presence", "letter", "visa_certified")


def _bad(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, field=f"outcome.{field}")


def _outcome_date(raw: Any, today: date) -> date:
    if isinstance(raw, datetime):
        day = raw.date()
    elif isinstance(raw, date):
        day = raw
    elif isinstance(raw, str) and len(raw) == 10:
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            raise _bad("date", f"{raw!r} is not a date (YYYY-MM-DD)") from None
    else:
        raise _bad("date", "a date (YYYY-MM-DD) is required")
    if day > today:
        raise _bad("date", f"{day.isoformat()} is in the future (today is {today.isoformat()})")
    return day


def _amount_of(kind: str, spec: OutcomeKind, raw: Any) -> float | None:
    if not spec.money:
        if raw is not None:
            raise _bad("amount", f"{kind} takes no amount")
        return None
    if raw is None:
        raise _bad("amount", f"{kind} needs an amount (USD)")
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise _bad("amount", "the amount is a number of US dollars")
    if raw < 0:
        raise _bad("amount", "the amount cannot be negative")
    if raw > MAX_AMOUNT:
        raise _bad("amount", "the amount is too large")
    return round(float(raw), 2)


def checked_outcome(raw: Mapping[str, Any], allowed: Iterable[str], today: date) -> dict[str, Any]:
    """One typed outcome as stored, or InvalidInput naming the field at fault.

    ``allowed`` is the agency's kinds (config/agencies.yaml); ``today`` bounds the date,
    since an outcome records what has happened.
    """
    if not isinstance(raw, Mapping):
        raise InvalidInput("record_outcome needs an outcome object", field="outcome")
    for key in raw:
        if key not in OUTCOME_FIELDS:
            raise _bad(str(key), f"unknown field {key!r}")
    kind = raw.get("kind")
    spec = OUTCOME_KINDS.get(kind) if isinstance(kind, str) else None
    if spec is None:
        raise _bad("kind", f"kind must be one of {', '.join(OUTCOME_KINDS)}")
    mine = tuple(allowed)
    if kind not in mine:
        may = ", ".join(mine) or "none"
        raise _bad("kind", f"this agency does not record {kind} outcomes (it may record: {may})")
    status = raw.get("status")
    if status not in spec.statuses:
        raise _bad("status", f"a {kind} status is one of {', '.join(spec.statuses)}")
    out: dict[str, Any] = {
        "kind": kind, "status": status, "date": _outcome_date(raw.get("date"), today).isoformat()}
    amount = _amount_of(kind, spec, raw.get("amount"))
    if amount is not None:
        out["amount"] = amount
    notes = raw.get("notes")
    if notes is not None:
        if not isinstance(notes, str) or len(notes) > MAX_NOTES:
            raise _bad("notes", f"notes are text of at most {MAX_NOTES} characters")
        if notes.strip():
            out["notes"] = notes.strip()
    return out


def outcome_problem(raw: Mapping[str, Any], today: date) -> tuple[str, str] | None:
    """(field, message) if the outcome breaks a rule of its kind, whatever the agency
    (the API schema's check; the agency's own kinds are checked by ``checked_outcome``)."""
    try:
        checked_outcome(raw, OUTCOME_KINDS, today)
    except InvalidInput as exc:
        return (exc.field or "outcome").removeprefix("outcome."), exc.message
    return None


def with_outcome(stored: Mapping[str, Any] | None, entry: Mapping[str, Any]) -> dict[str, Any]:
    """The referral's outcome with one more typed entry (a new dict: the column is
    encrypted JSON, so only an assignment is saved)."""
    old = dict(stored or {})
    entries = [e for e in old.get("outcomes") or [] if isinstance(e, Mapping)]
    return {**old, "outcomes": [*entries, dict(entry)]}


@dataclass(frozen=True)
class OutcomeEntry:
    """One outcome as the timeline shows it (typed, or read from a legacy row)."""

    kind: str
    status: str
    day: date | None
    amount: float | None = None
    notes: str | None = None

    @property
    def label(self) -> str:
        spec = OUTCOME_KINDS.get(self.kind)
        return spec.label if spec else self.kind.replace("_", " ")

    @property
    def happened(self) -> bool:
        spec = OUTCOME_KINDS.get(self.kind)
        return spec is not None and self.status in spec.happened


def _day(raw: Any) -> date | None:
    if isinstance(raw, str) and len(raw) >= 10:
        try:
            return date.fromisoformat(raw[:10])
        except ValueError:
            return None
    return None


def outcome_entries(outcome: Mapping[str, Any] | None) -> list[OutcomeEntry]:
    """Every outcome of one referral, in the order recorded (legacy rows first, dated
    the day they were recorded)."""
    if not outcome:
        return []
    found: list[OutcomeEntry] = []
    legacy_day = _day(outcome.get("recorded_at"))
    if isinstance(outcome.get("investigation_status"), str):
        found.append(OutcomeEntry("investigation", outcome["investigation_status"], legacy_day,
                                  notes=outcome.get("notes") if isinstance(
                                      outcome.get("notes"), str) else None))
    for key, status in (("restitution_ordered", "ordered"), ("restitution_paid", "paid")):
        if _amount(outcome.get(key)):
            found.append(OutcomeEntry("restitution", status, legacy_day, _amount(outcome[key])))
    typed = list(_typed(outcome.get("outcomes") or []))
    if outcome.get("kind"):
        typed.append(outcome)
    for item in typed:
        amount = item.get("amount")
        found.append(OutcomeEntry(
            str(item["kind"]), str(item.get("status") or ""), _day(item.get("date")),
            _amount(amount) if amount is not None else None,
            item.get("notes") if isinstance(item.get("notes"), str) else None))
    return found


@dataclass(frozen=True)
class OutcomeFigures:
    """One referral's outcome as counts: what happened, and money ordered and paid."""

    known: bool = False
    investigation: bool = False
    continued_presence: bool = False
    letter: bool = False
    visa_certified: bool = False
    restitution_ordered: float = 0.0
    restitution_paid: float = 0.0


def _amount(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _typed(items: Iterable[Any]) -> Iterable[Mapping[str, Any]]:
    return (item for item in items if isinstance(item, Mapping) and item.get("kind"))


def read_outcome(outcome: Mapping[str, Any] | None) -> OutcomeFigures:
    """The figures of one ``Referral.outcome`` (either shape; None: no outcome known)."""
    if not outcome:
        return OutcomeFigures()
    flags = dict.fromkeys(FLAGS, False)
    if outcome.get("investigation_status") in INVESTIGATED:
        flags["investigation"] = True
    ordered = paid = 0.0
    for entry in outcome_entries(outcome):
        if entry.kind == "restitution":
            if entry.status == "paid":
                paid += entry.amount or 0.0
            else:
                ordered += entry.amount or 0.0
            continue
        spec = OUTCOME_KINDS.get(entry.kind)
        if spec is not None and spec.flag and entry.happened:
            flags[spec.flag] = True
    return OutcomeFigures(True, restitution_ordered=ordered, restitution_paid=paid, **flags)
