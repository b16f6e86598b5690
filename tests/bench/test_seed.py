"""The seeding command: realistic rows the app can read, on either backend."""

from __future__ import annotations

from sqlalchemy import func, select

from bench.seed import seed_command
from intake.models import Signal
from workflows.models import Case, Referral


def test_seed_adds_cases_with_signals_and_readable_ciphertext(runner, db_session) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(seed_command, ["--cases", "120", "--batch", "100"])
    assert result.exit_code == 0, result.output
    assert "seeded 120 cases" in result.output
    assert db_session.scalar(select(func.count()).select_from(Case)) == 120
    assert db_session.scalar(select(func.count()).select_from(Signal)) == 120
    states = set(db_session.scalars(select(Case.state).distinct()))
    assert {"closed", "received"} <= states
    signal = db_session.scalars(select(Signal).where(Signal.narrative.is_not(None))).first()
    assert signal is not None and len(signal.narrative) > 20  # decrypts with the app's keys
    closed = db_session.scalars(select(Case).where(Case.state == "closed")).first()
    assert closed is not None and closed.deadline is None
    for referral in db_session.scalars(select(Referral)):
        assert referral.case_id and referral.idempotency_key.startswith("seed-")


def test_seed_twice_keeps_references_unique(runner, db_session) -> None:  # type: ignore[no-untyped-def]
    assert runner.invoke(seed_command, ["--cases", "30"]).exit_code == 0
    assert runner.invoke(seed_command, ["--cases", "30"]).exit_code == 0
    references = list(db_session.scalars(select(Case.reference)))
    assert len(references) == 60 == len(set(references))
