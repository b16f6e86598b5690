"""8 U.S.C. 1367: immigration-relief details (T and U visas, VAWA self-petitions,
continued presence) never leave the hotline.

The case carries a structured flag, ``protected_immigration``, that staff set (or
confirm from a suggestion); it is never put in a packet nor shown to agency users. The
text search below only *suggests* the flag to staff: a word list in English and Spanish
("T visa", "visa T", "visa U", "T-1", "VAWA", "presencia continuada"…), matched in one
pass over the words, so its time grows linearly with the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy.orm import Session

from workflows.audit import record_event
from workflows.db import utcnow
from workflows.errors import Conflict
from workflows.models import Case

# Single words (after lower-casing) that name an immigration-relief application.
_WORDS = frozenset({
    "vawa", "t-visa", "u-visa", "t-visas", "u-visas", "t-1", "u-1", "i-914", "i-918",
    "i-360", "i914", "i918", "i360", "self-petition", "autopetición", "autopeticion",
})
# Two words in a row that do (English "T visa", Spanish "visa T").
_PAIRS = frozenset({
    ("t", "visa"), ("u", "visa"), ("t", "visas"), ("u", "visas"),
    ("visa", "t"), ("visa", "u"), ("visas", "t"), ("visas", "u"),
    ("continued", "presence"), ("presencia", "continuada"), ("self", "petition"),
})
_SPLIT = re.compile(r"[^\w-]+")  # one character class, repeated: no backtracking


def suggest_protected(texts: Iterable[str | None]) -> list[str]:
    """The immigration-relief terms found in these texts (for staff to confirm)."""
    found: dict[str, None] = {}
    for text in texts:
        if not text:
            continue
        previous = ""
        for word in _SPLIT.split(text.lower()):
            if not word:
                continue
            if word in _WORDS:
                found[word.upper()] = None
            if (previous, word) in _PAIRS:
                found[f"{previous} {word}".upper()] = None
            previous = word
    return list(found)


_SENTENCE = re.compile(r"[^.!?\n]*[.!?\n]?")  # one class then one char: linear
WITHHELD = "[withheld: protected immigration information]"


def withhold_relief_sentences(text: str) -> str:
    """The text without the sentences that name an immigration-relief application
    (for a case staff flagged: what the flag protects never goes out)."""
    out = []
    for sentence in _SENTENCE.findall(text):
        if sentence and suggest_protected([sentence]):
            out.append(WITHHELD + (" " if sentence.endswith(" ") else ""))
        else:
            out.append(sentence)
    return "".join(out)


def case_suggestion(case: Case) -> list[str]:
    """Terms in the case's narratives and transcripts that suggest the 1367 flag."""
    return suggest_protected(
        text for signal in case.signals for text in (signal.narrative, signal.transcript)
    )


def set_protected(
    session: Session, case: Case, actor: str, protected: bool, *, version: int | None
) -> Case:
    """Staff set or clear the 1367 flag; audited (who, when), never the details."""
    if version is not None and version != case.version:
        raise Conflict(
            f"case {case.id} is at version {case.version}, not {version}; reload it",
            field="version",
        )
    before = case.protected_immigration
    case.protected_immigration = protected
    case.protected_set_by = actor
    case.protected_set_at = utcnow()
    record_event(
        session,
        actor=actor,
        action="protect_immigration" if protected else "unprotect_immigration",
        case_id=case.id,
        from_state=case.state,
        to_state=case.state,
        detail={"from": before, "to": protected},
    )
    return case
