"""Text a tipster or an agency types cannot stall the service (issue 11, item 4).

The 8 U.S.C. 1367 redaction was one backtracking pattern: a 19,500-character narrative
without sentence punctuation held ``GET /api/v1/agency/referrals/<id>`` for 25 s. These
tests use sizes at which a quadratic pass takes minutes to hours, under a generous
deadline that linear work meets with room to spare; they assert the result too.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from referrals.embedded import run_embedded_once
from tests.referrals.casework import screen_and_approve
from tests.referrals.conftest import agency_env
from workflows.packets import REDACTED, redact_protected

# The pattern the packet used before: the sentence rule it meant, kept here as the oracle.
OLD_RULE = re.compile(
    r"[^.!?\n]*\b(?:[TU][- ]?visas?|VAWA|I-?914|I-?918|I-?360|continued presence|"
    r"self[- ]petition\w*)\b[^.!?\n]*[.!?]?",
    re.I,
)
PIECES = ["T visa", "u-visa", "VAWA", "I-914", "i918", "continued presence", "self-petitioner",
          " ", ".", "!", "?", "\n", "a", "Tvisas", "xT visa", "word", "é", "_"]


class TookTooLong(Exception):
    pass


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail if the block runs longer: generous for linear work, far short of quadratic."""

    def _expire(*_: object) -> None:
        raise TookTooLong(f"still running after {seconds}s: super-linear work on user text")

    previous = signal.signal(signal.SIGALRM, _expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=14).map("".join))
def test_redaction_withholds_exactly_the_sentences_the_rule_names(text: str) -> None:
    assert redact_protected(text) == OLD_RULE.sub(REDACTED, text)


# 400,000 characters: the old pattern needs hours on the first two (quadratic from each
# start position); the new pass takes well under a second.
HOSTILE = {
    "no punctuation": "word " * 80_000,
    "one long word": "a" * 400_000,
    "one mention then no end": "She has a T visa " + "and more " * 44_000,
    "a mention in every sentence": "T visa. " * 50_000,
    "mentions without ends": "VAWA " * 80_000,
    "self-petition glued to a long word": "self-petition" + "x" * 400_000,
    "line breaks only": "\n" * 400_000,
}


@pytest.mark.parametrize("shape", sorted(HOSTILE))
def test_redaction_is_linear_on_hostile_text(shape: str) -> None:
    text = HOSTILE[shape]
    with deadline(30):
        redacted = redact_protected(text)
    assert REDACTED in redacted or not re.search(r"visa|VAWA|petition", text, re.I)
    assert not re.search(r"\bT visa\b|\bVAWA\b", redacted)


NO_STOP = ("the house by the river where they keep the workers " * 400)[:20000]  # no punctuation


def _tip_at_every_limit(client) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {
        "narrative": NO_STOP,
        "location": ("near the old mill on county road " * 20)[:500],
        "anonymous": False,
        "contact": {"email": "a" * 64 + "@" + ("b" * 60 + ".") * 3 + "org"},
    }


def test_every_text_field_at_its_limit_passes_through_to_the_agency(
    app, client, operator, supervisor, make_actor, agency, delivery_runtime
) -> None:
    """Web tip, operator log, follow-up message and agency answers, each at its maximum
    and without sentence punctuation, from intake to the agency's view."""
    fbi = make_actor("agency", "FBI")
    with deadline(60):
        tip = client.post("/api/v1/tips", json=_tip_at_every_limit(client))
        assert tip.status_code == 201, tip.get_json()
        reference, passphrase = tip.get_json()["reference"], tip.get_json()["passphrase"]
        added = client.post(
            f"/api/v1/tips/{reference}/messages",
            json={"body": ("more about the van and the driver " * 200)[:5000]},
            headers={"X-Tip-Passphrase": passphrase},
        )
        assert added.status_code == 201
        call = client.post(
            "/api/v1/calls",
            json={"caller_type": "victim", "narrative": "T visa " * 2857,
                  "location": "x" * 500, "caller_name": "n" * 200},
            headers=operator.headers,
        )
        assert call.status_code == 201, call.get_json()
        case_ids = [int(call.get_json()["id"])]
        from workflows.cases import find_by_reference

        with app.extensions["runtime"].session() as session:
            case_ids.append(find_by_reference(session, reference).id)
        env = agency_env(agency.url, "FBI")
        referral_ids = []
        for case_id in case_ids:
            referral_ids += screen_and_approve(app, case_id, operator, supervisor)
        run_embedded_once(delivery_runtime(env=env))
        for referral_id in referral_ids:
            url = f"/api/v1/agency/referrals/{referral_id}"
            shown = client.get(url, headers=fbi.headers)
            assert shown.status_code == 200
            summary = shown.get_json()["packet"]["summary"]
            assert summary.startswith(("the house by the river", REDACTED))
            page = client.get("/api/v1/agency/referrals", headers=fbi.headers)
            assert page.status_code == 200
            answered = client.post(
                f"{url}/events",
                json={"event": "request_info", "reason": "w" * 5000},
                headers=fbi.headers,
            )
            assert answered.status_code == 200, answered.get_json()
            accepted = client.post(f"{url}/events", json={"event": "accept"}, headers=fbi.headers)
            assert accepted.status_code == 200
            outcome = client.post(
                f"{url}/events",
                json={"event": "record_outcome", "outcome": {
                    "kind": "investigation", "status": "opened", "date": "2026-01-05",
                    "notes": "n " * 2500}},
                headers=fbi.headers,
            )
            assert outcome.status_code == 200, outcome.get_json()
