"""Tip references: random, 40 bits, readable aloud, fixed at insert (issue 11, item 6)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event, select

from workflows import cases
from workflows.cases import canonical_reference, find_by_reference, new_reference, open_case
from workflows.db import transaction
from workflows.models import Case

SHAPE = re.compile(r"HT-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}")


def test_references_are_random_readable_and_40_bits() -> None:
    drawn = [new_reference() for _ in range(2000)]
    assert all(SHAPE.fullmatch(r) for r in drawn)
    assert len(set(drawn)) == len(drawn)
    assert len(cases.ALPHABET) == 32 and not set("ILOU") & set(cases.ALPHABET)  # 8 x 5 bits
    used = {c for r in drawn for c in r[3:].replace("-", "")}
    assert used == set(cases.ALPHABET)  # every symbol turns up: no hidden structure


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("HT-7K3Q-9XWD", "HT-7K3Q-9XWD"),
        ("ht-7k3q-9xwd", "HT-7K3Q-9XWD"),
        ("ht7k3q9xwd", "HT-7K3Q-9XWD"),
        (" HT 7K3Q 9XWD ", "HT-7K3Q-9XWD"),
        ("HT-7K3Q-9XWO", "HT-7K3Q-9XW0"),  # O read as zero
        ("HT-IK3Q-9XWL", "HT-1K3Q-9XW1"),  # I and L read as one
        ("HT-2026-000123", "HT-2026-000123"),  # references issued before stay valid
        ("ht2026000123", "HT-2026-000123"),
        ("HT-7K3Q-9XWU", None),
        ("HT-7K3Q", None),
        ("XX-7K3Q-9XWD", None),
        ("", None),
        ("HT-" + "A" * 5000, None),
    ],
)
def test_what_a_person_types_finds_the_stored_reference(typed: str, stored: str | None) -> None:
    assert canonical_reference(typed) == stored


def test_the_reference_is_written_with_the_insert_and_never_updated(app) -> None:
    runtime = app.extensions["runtime"]
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", seen)
    try:
        with runtime.session() as session, transaction(session):
            case = open_case(session, actor="test", channel="web")
    finally:
        event.remove(runtime.engine, "before_cursor_execute", seen)
    assert SHAPE.fullmatch(case.reference)
    assert not [s for s in statements if s.lstrip().upper().startswith("UPDATE CASES")]


def test_a_colliding_reference_is_drawn_again(app, monkeypatch) -> None:
    runtime = app.extensions["runtime"]
    with runtime.session() as session, transaction(session):
        taken = open_case(session, actor="test", channel="web").reference
    draws = iter([taken, taken, "HT-ZZZZ-ZZZ9"])
    monkeypatch.setattr(cases, "new_reference", lambda: next(draws))
    with runtime.session() as session, transaction(session):
        case = open_case(session, actor="test", channel="web")
    assert case.reference == "HT-ZZZZ-ZZZ9"
    with runtime.session() as session:
        assert session.scalar(select(Case.id).where(Case.reference == taken)) is not None


def test_an_old_style_reference_is_still_found(app) -> None:
    runtime = app.extensions["runtime"]
    with runtime.session() as session, transaction(session):
        case = open_case(session, actor="test", channel="web")
        case.reference = "HT-2026-000123"  # as the rows issued before keep theirs
    with runtime.session() as session:
        assert find_by_reference(session, "ht 2026 000123").id == case.id
