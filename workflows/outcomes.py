"""What an agency's recorded outcome means for the statistics: the one mapping to extend.

Agencies record outcomes through ``record_outcome`` (``Referral.outcome``, a JSON dict).
Today that dict is the investigation shape of ``referrals.schemas.OutcomeIn``
(``investigation_status``, ``restitution_ordered``, ``restitution_paid``, …); issue 13
adds typed outcomes (``{"kind": "continued_presence", "status": "granted", …}``). Both
shapes are read here and nowhere else, so the dashboard, the public figures and the
research export count the same things; a new kind is one entry in ``KIND_FLAGS``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Investigation statuses (referrals.schemas.INVESTIGATION_STATUSES) that mean an
# investigation was opened: Polaris's "led to an investigation".
INVESTIGATED = frozenset(
    {"open", "referred_for_prosecution", "charged", "convicted", "acquitted", "closed"}
)
# Typed outcome kinds (issue 13) -> the flag they set when their status says it happened.
KIND_FLAGS = {
    "investigation": "investigation",
    "continued_presence": "continued_presence",
    "certification_letter": "letter",
    "eligibility_letter": "letter",
    "interim_assistance": "letter",
    "t_visa_endorsement": "visa_certified",
    "u_visa_certification": "visa_certified",
}
HAPPENED = frozenset({"opened", "open", "granted", "issued", "signed", "certified", "endorsed",
                      "charged", "convicted", "ordered", "paid", "done"})
FLAGS = ("investigation", "continued_presence", "letter", "visa_certified")


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
    ordered = _amount(outcome.get("restitution_ordered"))
    paid = _amount(outcome.get("restitution_paid"))
    if outcome.get("investigation_status") in INVESTIGATED:
        flags["investigation"] = True
    typed = list(_typed(outcome.get("outcomes") or []))
    if outcome.get("kind"):
        typed.append(outcome)
    for item in typed:
        kind, status = item["kind"], str(item.get("status") or "")
        if kind == "restitution":
            amount = _amount(item.get("amount"))
            if status == "paid":
                paid += amount
            else:
                ordered += amount
        elif kind in KIND_FLAGS and status in HAPPENED:
            flags[KIND_FLAGS[kind]] = True
    return OutcomeFigures(True, restitution_ordered=ordered, restitution_paid=paid, **flags)
