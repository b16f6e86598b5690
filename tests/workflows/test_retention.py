"""Retention: closed cases past their period lose their personal data, statistics survive."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from intake.models import Signal, SmsConversation, TipMessage
from referrals.models import Notification
from tests.conftest import backend
from tests.factories import NotificationFactory, ReferralFactory, SmsConversationFactory
from workflows.audit import verify_chain
from workflows.catalog_files import CatalogError
from workflows.db import utcnow
from workflows.models import AuditEvent, Case, Referral
from workflows.retention import RetentionPolicy, load_retention_policy, purge_expired

POLICY = RetentionPolicy(
    default_days=730,
    case_types={"sex": 2555, "labor": 2555, "unknown": 730},
    resolutions={"information_only": 90},
)


def _tip(client) -> dict:  # type: ignore[no-untyped-def]
    tip = client.post(
        "/api/v1/tips",
        json={
            "narrative": "they keep passports",
            "location": "Elm St",
            "anonymous": False,
            "contact": {"phone": "+12025550143", "email": "t@example.org"},
        },
    ).get_json()
    headers = {"X-Tip-Passphrase": tip["passphrase"]}
    client.post(f"/api/v1/tips/{tip['reference']}/messages", json={"body": "more"}, headers=headers)
    return tip


def _close(db_session, reference: str, days_ago: int, **fields: object) -> Case:  # type: ignore[no-untyped-def]
    case = db_session.scalar(select(Case).where(Case.reference == reference))
    case.state = "closed"
    case.closed_at = utcnow() - timedelta(days=days_ago)
    case.screening = {
        "facts": {
            "victim_minor": False,
            "document_confiscation": True,
            "victim_age": 31,
            "venue": "agriculture",
            "notes": "free text",
        },
        "indicators": ["debt_bondage"],
        "consent": {"law_enforcement": {"given_by": "Ana Canary", "scope": "law_enforcement"}},
    }
    for name, value in fields.items():
        setattr(case, name, value)
    db_session.commit()
    return case


def _add_related_rows(db_session, case: Case) -> None:  # type: ignore[no-untyped-def]
    SmsConversationFactory(signal=case.signals[0], phone="+12025550143")
    NotificationFactory(recipient="+12025550143", body="reply text", case_id=case.id)
    ReferralFactory(
        case=case,
        agency_code="ICE",
        state="declined",
        rule="r",
        reason="ICE: documents confiscated",
        decline_reason="the victim's name is …",
        outcome={"investigation_status": "opened", "charges": ["x v. Y"], "notes": "name",
                 "outcomes": [{"kind": "restitution", "status": "paid", "amount": 500.0,
                               "date": "2026-01-05", "notes": "paid by Mr X",
                               "recorded_at": "2026-01-06T10:00:00+00:00"}]},
        legal_basis={"rule": "r"},
    )
    db_session.commit()


def test_an_expired_closed_case_is_de_identified_and_counted_once(client, db_session) -> None:
    expired = _close(
        db_session,
        _tip(client)["reference"],
        800,
        case_type="labor",
        resolution_code="information_only",
        priority="urgent",
    )
    kept = _close(db_session, _tip(client)["reference"], 100)  # unknown: 730 days
    open_tip = _tip(client)
    _add_related_rows(db_session, expired)
    states_before = db_session.execute(
        select(Case.state, Case.case_type, func.count()).group_by(Case.state, Case.case_type)
    ).all()

    assert purge_expired(db_session, utcnow(), POLICY) == 1
    assert purge_expired(db_session, utcnow(), POLICY) == 0  # idempotent

    db_session.expire_all()
    shell = db_session.get(Case, expired.id)
    assert shell.purged_at is not None and shell.state == "closed"
    assert (shell.case_type, shell.priority, shell.resolution_code) == (
        "labor",
        "urgent",
        "information_only",
    )
    assert shell.passphrase_hash is None
    assert shell.screening == {
        "facts": {"victim_minor": False, "document_confiscation": True, "venue": "agriculture"},
        "indicators": ["debt_bondage"],
        "consent": {"law_enforcement": {"scope": "law_enforcement"}},
    }
    signal = db_session.scalar(select(Signal).where(Signal.case_id == expired.id))
    assert signal is not None and signal.channel == "web"
    for name in (
        "narrative",
        "location",
        "contact_phone",
        "contact_email",
        "from_phone_hash",
        "transcript",
        "recording_url",
        "caller_name",
    ):
        assert getattr(signal, name) is None, name
    for model in (TipMessage, SmsConversation, Notification):
        assert (
            db_session.scalar(
                select(func.count()).select_from(model).where(model.case_id == expired.id)
            )
            == 0
        ), model.__name__
    referral = db_session.scalar(select(Referral).where(Referral.case_id == expired.id))
    assert referral.state == "declined" and referral.decline_reason is None
    assert referral.outcome == {"investigation_status": "opened", "charges": 1, "outcomes": [
        {"kind": "restitution", "status": "paid", "date": "2026-01-05", "amount": 500.0}]}
    assert referral.legal_basis == {"rule": "r"}

    # Untouched: a case inside its period, and an open case.
    for reference in (kept.reference, open_tip["reference"]):
        case = db_session.scalar(select(Case).where(Case.reference == reference))
        assert case.purged_at is None and case.signals[0].narrative == "they keep passports"

    # Statistics survive; the chain verifies and ends with the purge's own event.
    states_after = db_session.execute(
        select(Case.state, Case.case_type, func.count()).group_by(Case.state, Case.case_type)
    ).all()
    assert sorted(states_after) == sorted(states_before)
    assert verify_chain(db_session).ok
    last = db_session.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
    assert (last.action, last.case_id, last.actor) == ("purge", expired.id, "system:retention")


def test_a_purged_case_is_gone_from_the_api_and_the_follow_up(client, db_session, operator) -> None:
    tip = _tip(client)
    case = _close(db_session, tip["reference"], 1000)
    assert purge_expired(db_session, utcnow(), POLICY) == 1
    assert client.get(f"/api/v1/cases/{case.id}", headers=operator.headers).status_code == 404
    follow_up = client.get(
        f"/api/v1/tips/{tip['reference']}", headers={"X-Tip-Passphrase": tip["passphrase"]}
    )
    assert follow_up.status_code == 404


def test_a_case_with_a_referral_still_in_flight_waits(client, db_session) -> None:
    case = _close(db_session, _tip(client)["reference"], 1000)
    ReferralFactory(case=case, agency_code="FBI", state="queued")
    db_session.commit()
    assert purge_expired(db_session, utcnow(), POLICY) == 0


def test_the_cli_purges_with_the_configured_policy(client, db_session, runner) -> None:
    case = _close(db_session, _tip(client)["reference"], 100, resolution_code="information_only")
    preview = runner.invoke(args=["retention", "purge", "--now", "2000-01-01T00:00:00"])
    assert preview.exit_code == 0 and "purged 0 case(s)" in preview.output
    result = runner.invoke(args=["retention", "purge"])
    assert result.exit_code == 0 and "purged 1 case(s)" in result.output, result.output
    db_session.expire_all()
    assert db_session.get(Case, case.id).purged_at is not None
    bad = runner.invoke(args=["retention", "purge", "--now", "yesterday"])
    assert bad.exit_code == 2 and "ISO 8601" in bad.output


def test_the_shipped_policy_loads_into_the_catalogs(app) -> None:
    policy = app.extensions["runtime"].catalogs["retention"]
    assert policy.days_for("sex", None) == 2555
    assert policy.days_for("labor", "information_only") == 90
    assert policy.days_for("nonsense", None) == policy.default_days


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("default_days: 30\ncase_types:\n  sex: -4\n", 3, "case_types.sex"),
        ("default_days: many\n", 1, "default_days"),
        ("default_days: 30\nkeep_forever: true\n", 2, "unknown key"),
        ("default_days: 30\ncase_types: [1, 2]\n", 2, "must be a mapping"),
        ("default_days: [\n", 2, "line"),
    ],
)
def test_a_broken_policy_names_file_and_line(tmp_path: Path, text, line, words) -> None:
    path = tmp_path / "retention.yaml"
    path.write_text(text)
    with pytest.raises(CatalogError) as raised:
        load_retention_policy(path)
    message = str(raised.value)
    assert str(path) in message and f"line {line}" in message and words in message


def test_the_scheduled_job_purges(client, db_session) -> None:
    from referrals.tasks import run_retention_purge

    case = _close(db_session, _tip(client)["reference"], 5000)
    assert run_retention_purge() == 1
    db_session.expire_all()
    assert db_session.get(Case, case.id).purged_at is not None


def test_the_embedded_worker_purges_with_its_deadline_watch(app, client, db_session) -> None:
    from referrals.embedded import run_embedded_once

    case = _close(db_session, _tip(client)["reference"], 5000)
    run_embedded_once(app.extensions["runtime"], check_deadlines=True)
    db_session.expire_all()
    assert db_session.get(Case, case.id).purged_at is not None


@pytest.mark.skipif(backend() != "services", reason="the relay's schedule needs Redis")
def test_the_relay_enqueues_the_purge_once_an_hour(app, settings) -> None:
    import dataclasses
    import uuid

    from redis import Redis

    from referrals.relay import _queues, tick_retention_purge

    # A namespace of its own, so no worker of another test takes the job first.
    namespace = f"{settings.redis_namespace}{uuid.uuid4().hex[:8]}-"
    runtime = dataclasses.replace(
        app.extensions["runtime"], settings=settings.with_overrides(redis_namespace=namespace)
    )
    connection = Redis.from_url(settings.redis_url)
    queues = _queues(runtime, connection)
    try:
        assert tick_retention_purge(runtime, connection, queues) is True
        assert tick_retention_purge(runtime, connection, queues) is False
        jobs = [queues["default"].fetch_job(job_id) for job_id in queues["default"].job_ids]
        assert [job.func_name for job in jobs] == ["referrals.tasks.run_retention_purge"]
    finally:
        queues["default"].empty()
        for key in connection.scan_iter(match=f"{namespace}hotline:retention-purge:*"):
            connection.delete(key)
