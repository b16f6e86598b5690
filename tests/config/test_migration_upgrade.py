"""A database holding data at the released revision 0001 upgrades to head without loss."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import MetaData, create_engine, func, insert, select, text
from sqlalchemy.orm import Session

from config.cli import upgrade_database
from intake.models import Signal
from tests.conftest import PG_ADMIN_URL, _postgres_database, backend
from workflows.audit import GENESIS, legacy_event_hash, verify_chain
from workflows.casefile import add_item
from workflows.links import reindex_identifiers, related_cases
from workflows.models import AuditEvent, Case, Referral, User
from workflows.pii import keyring, lookup_hash

NARRATIVE = "a narrative stored at revision 0001"
PHONE = "+12145550134"


@pytest.fixture
def database_at_0001(app, tmp_path, worker_id_safe) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A new database migrated to 0001 only (the app fixture has set the PII keys)."""
    if backend() == "services":
        url = _postgres_database(f"{worker_id_safe}_upgrade")
    else:
        url = f"sqlite:///{tmp_path / 'at_0001.sqlite3'}"
    upgrade_database(url, "0001")
    yield url
    if url.startswith("postgresql"):
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
        admin.dispose()


def _fill_at_0001(url: str) -> None:
    """Today's rows, written with the 0001 schema as it stands (no model of today)."""
    engine = create_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    t = meta.tables
    now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    with engine.begin() as conn:
        # No explicit ids: PostgreSQL's sequences must stay in step for the writes after.
        def add(table: str, **values: object) -> int:
            return int(conn.execute(insert(t[table]).values(**values).returning(t[table].c.id))
                       .scalar_one())

        user = add("users", username="olga", role="operator", active=True, failed_logins=0,
                   created_at=now)
        case_ids = []
        for n in (1, 2):
            case_id = add("cases", reference=f"HT-2026-00000{n}", state="referred",
                          priority="urgent", priority_rank=1, score=5, case_type="sex",
                          anonymous=False, created_at=now, updated_at=now, version=3,
                          screening={"facts": {"victim_age": 16}, "indicators": ["x"]})
            case_ids.append(case_id)
            add("signals", case_id=case_id, channel="operator", status_sequence=-1,
                language="en", anonymous=False, narrative=keyring.encrypt(NARRATIVE),
                from_phone=keyring.encrypt(PHONE), from_phone_hash=lookup_hash(PHONE),
                operator_id=user, created_at=now, updated_at=now)
        add("referrals", case_id=case_ids[0], agency_code="FBI", state="sent", mandatory=True,
            rule="r", reason="FBI: r", idempotency_key="k1", attempts=1, created_at=now,
            updated_at=now, sent_at=now, version=2)
        prev, last = GENESIS, 0
        for action in ("open", "approve"):
            event = AuditEvent(case_id=case_ids[0], actor="olga", action=action, created_at=now)
            digest = legacy_event_hash(prev, event)
            last = add("audit_events", case_id=case_ids[0], actor="olga", action=action,
                       created_at=now, prev_hash=prev, hash=digest)
            prev = digest
        add("audit_head", last_event_id=last, last_hash=prev)
    engine.dispose()


def test_upgrade_from_0001_keeps_every_row_and_the_audit_chain(database_at_0001) -> None:
    _fill_at_0001(database_at_0001)
    upgrade_database(database_at_0001, "head")
    engine = create_engine(database_at_0001)
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 2
        case = session.get(Case, 1)
        assert case is not None
        assert (case.reference, case.state, case.version) == ("HT-2026-000001", "referred", 3)
        assert case.screening == {"facts": {"victim_age": 16}, "indicators": ["x"]}
        assert case.merged_into_id is None and case.incident_state is None
        assert case.victims == [] and case.subjects == []
        signal = session.get(Signal, 1)
        assert signal is not None and signal.narrative == NARRATIVE and signal.from_phone == PHONE
        referral = session.get(Referral, 1)
        assert referral is not None and (referral.state, referral.sent_at is not None) == (
            "sent", True)
        assert verify_chain(session).ok and verify_chain(session).checked == 2
        # The upgraded database takes today's writes: a subject on an old case links it.
        user = session.scalars(select(User)).one()
        add_item(session, 2, user, "subjects", {"kind": "phone", "value": "(214) 555-0134"})
        session.commit()
        assert [r.id for r in related_cases(session, 2)] == []  # 0001 rows carry no index yet
        # `flask pii reindex` indexes what revision 0001 stored: the two callers' number.
        assert reindex_identifiers(session, batch_size=1) == 3
        assert [(r.id, r.shared) for r in related_cases(session, 2)] == [(1, ["phone"])]
        assert verify_chain(session).ok
    engine.dispose()
