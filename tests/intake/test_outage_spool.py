"""PostgreSQL really down: callers, texters, web tipsters and operators are still answered,
nothing is lost, and every record reaches the database once when it returns.

A private cluster (``tests.pg_cluster``) is stopped with ``pg_ctl``; a real gunicorn
serves the app; 50 signals arrive across voice (a whole IVR walk to voicemail), SMS
(some texters answer the questions, one says they are not safe), web tips and
operator call logs; then every process of that gunicorn is killed with SIGKILL while
the spool holds them all, PostgreSQL is started again and a new gunicorn drains the
spool. All 50 cases exist once, under the references their tipsters were given, and
those references (with the passphrases) work for follow-up.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from config.cli import upgrade_database
from config.settings import ROOT
from intake.models import Signal, SpoolReplay, TipMessage
from tests.intake.twilio_caller import AUTH_TOKEN, PUBLIC_BASE, new_sid, sign
from tests.pg_cluster import PrivateCluster, free_port, postgres_bin
from workflows.accounts import create_token, create_user
from workflows.audit import audit_keys, verify_chain
from workflows.models import AuditEvent, Case
from workflows.outbox import OutboxMessage
from workflows.pii import generate_key, keyring

pytestmark = [
    pytest.mark.services,
    pytest.mark.slow,
    pytest.mark.xdist_group("outage"),
    pytest.mark.skipif(
        os.environ.get("TEST_BACKEND", "services" if os.environ.get("CI") == "true" else "")
        != "services",
        reason="starts its own PostgreSQL cluster and gunicorn (TEST_BACKEND=services)",
    ),
    pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL's pg_ctl is not installed"),
]

REFERENCE = re.compile(r"HT-[0-9A-Z]{4}-[0-9A-Z]{4}")
PASSPHRASE = re.compile(r"[a-z]+(?:-[a-z]+){4}-[0-9]{3}")


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    """A private PostgreSQL cluster, migrated, stopped at the end whatever happens."""
    pg = PrivateCluster()
    pg.init()
    pg.start()
    admin = create_engine(pg.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("CREATE DATABASE hotline"))
    admin.dispose()
    upgrade_database(pg.url("hotline"))
    try:
        yield pg
    finally:
        pg.stop()
        pg.remove()


class Server:
    """A real gunicorn (2 sync workers) on the private cluster, in its own process group."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{self.port}",
                 "--timeout", "60", "wsgi:app"],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.base}/healthz", timeout=5)
                return
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"gunicorn did not start: {self.log.read_text()[-2000:]}")

    def kill9(self) -> None:
        """SIGKILL the master and every worker (the group this test started)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)


def twilio_post(server: Server, path: str, params: dict[str, str]) -> ET.Element:
    """POST a signed webhook as Twilio would; the TwiML answer."""
    answer = requests.post(
        server.base + path,
        data=params,
        headers={"X-Twilio-Signature": sign(PUBLIC_BASE + path, params)},
        timeout=15,
    )
    assert answer.status_code == 200, (path, answer.status_code, answer.text[:500])
    return ET.fromstring(answer.content)  # noqa: S314 - the app's own output


def spoken_text(root: ET.Element) -> str:
    return " | ".join(say.text or "" for say in root.iter("Say"))


def heard_reference(root: ET.Element) -> tuple[str, str]:
    """The reference and passphrase the IVR reads out (``H T, 7 K 3 Q, …``)."""
    says = [say.text or "" for say in root.iter("Say")]
    ref_say = next(s for s in says if re.search(r"H T, ", s))
    spelled = re.search(r"H T, [0-9A-Z ]+, [0-9A-Z ]+", ref_say)
    assert spelled, ref_say
    reference = "-".join(part.replace(" ", "") for part in spelled.group(0).split(", "))
    pass_say = next(s for s in says if re.search(r"[a-z]+, [a-z]+, [a-z]+, [a-z]+, [a-z]+,", s))
    words = re.search(r"([a-z]+), ([a-z]+), ([a-z]+), ([a-z]+), ([a-z]+), (\d) (\d) (\d)",
                      pass_say)
    assert words, pass_say
    g = words.groups()
    return reference, "-".join([*g[:5], "".join(g[5:])])


def call_to_voicemail(server: Server) -> tuple[str, str]:
    """A caller who picks English, asks for voicemail and leaves a message."""
    sid = new_sid("CA")
    base = {"CallSid": sid, "From": "+12025550100", "To": "+18883737888",
            "AccountSid": "AC" + "0" * 32}
    twilio_post(server, "/twilio/voice", {**base, "CallStatus": "ringing"})
    twilio_post(server, "/twilio/voice/language?attempt=0", {**base, "Digits": "1"})
    menu = twilio_post(server, "/twilio/voice/menu?lang=en&attempt=0", {**base, "Digits": "3"})
    assert menu.find("Record") is not None
    recording = new_sid("RE")
    done = twilio_post(server, "/twilio/voice/recorded?lang=en", {
        **base, "RecordingSid": recording, "RecordingDuration": "31",
        "RecordingUrl": f"https://api.twilio.com/recordings/{recording}",
    })
    twilio_post(server, "/twilio/voice/transcription", {
        **base, "RecordingSid": recording, "TranscriptionSid": new_sid("TR"),
        "TranscriptionStatus": "completed",
        "TranscriptionText": "Men are kept in a trailer behind the farm on route 9.",
    })
    # The optional last question, answered during the outage too: 2 = social media.
    twilio_post(server, "/twilio/voice/heard?lang=en", {**base, "Digits": "2"})
    return heard_reference(done)


def text_in(server: Server, sender: str, body: str) -> str:
    root = twilio_post(server, "/twilio/sms", {
        "MessageSid": new_sid("SM"), "From": sender, "To": "233733", "Body": body,
        "AccountSid": "AC" + "0" * 32, "NumMedia": "0",
    })
    return " ".join(m.text or "" for m in root.iter("Message"))


@pytest.fixture
def env(cluster: PrivateCluster, tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "HOTLINE_ENV": "test",
        "DATABASE_URL": cluster.url("hotline"),
        "SECRET_KEY": "outage-test-secret",
        "PII_ENCRYPTION_KEYS": generate_key(),
        "AUDIT_KEYS": "outage-test-audit-key-" + generate_key(),
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "PUBLIC_BASE_URL": PUBLIC_BASE,
        "RATE_LIMITS_ENABLED": "false",
        "EMBEDDED_WORKER": "false",
        "SESSION_COOKIE_SECURE": "false",
        "SPOOL_PATH": str(tmp_path / "spool"),
        "SPOOL_DRAIN_MS": "200",
        "LOG_LEVEL": "WARNING",
    }


def test_fifty_signals_through_a_postgres_outage_and_a_kill_9(
    cluster: PrivateCluster, env: dict[str, str], tmp_path: Path
) -> None:
    engine = create_engine(cluster.url("hotline"), pool_pre_ping=True)  # outlives the outage
    keyring.configure((env["PII_ENCRYPTION_KEYS"],))
    audit_keys.configure((env["AUDIT_KEYS"],))
    with Session(engine) as session:
        create_user(session, "op-outage", "operator")
        token = create_token(session, "op-outage")
        session.commit()
    server = Server(env, tmp_path / "gunicorn.log")
    server.start()
    try:
        auth = {"Authorization": f"Bearer {token}"}
        # One call while the database is up: the token is now known to this host.
        before = requests.post(f"{server.base}/api/v1/calls", json={
            "caller_type": "community_member", "narrative": "Logged before the outage."},
            headers=auth, timeout=15)
        assert before.status_code == 201, before.text
        assert requests.get(f"{server.base}/readyz", timeout=5).json()["status"] == "ready"

        cluster.stop()  # PostgreSQL really down
        ready = requests.get(f"{server.base}/readyz", timeout=15)
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded: spooling", ready.json()

        given: dict[str, tuple[str, str | None]] = {}  # reference -> (channel, passphrase)
        for _ in range(13):  # voice: the whole IVR to a voicemail, reference read out
            reference, passphrase = call_to_voicemail(server)
            given[reference] = ("voice", passphrase)
        for n in range(13):  # SMS: a new texter each; some answer the questions
            sender = f"+1202555{2000 + n:04d}"
            reply = text_in(server, sender, f"Tip {n}: girls are kept at the motel on 5th.")
            reference = REFERENCE.search(reply)
            passphrase = PASSPHRASE.search(reply)
            assert reference and passphrase, reply
            assert "Where is this happening" in reply
            given[reference.group(0)] = ("sms", passphrase.group(0))
            if n < 4:
                assert "under 18" in text_in(server, sender, "Motel 6 on 5th street")
                assert "safe right now" in text_in(server, sender, "YES")
                not_safe = text_in(server, sender, "NO")
                assert "911" in not_safe and "text you back" in not_safe, not_safe
        for n in range(12):  # web tips
            answer = requests.post(f"{server.base}/api/v1/tips", json={
                "narrative": f"Web tip {n}: workers locked in at night.", "location": "Elm St"},
                timeout=15)
            assert answer.status_code == 201, answer.text
            given[answer.json()["reference"]] = ("web", answer.json()["passphrase"])
        for n in range(12):  # operator call logs, with a token verified before the outage
            answer = requests.post(f"{server.base}/api/v1/calls", json={
                "caller_type": "victim", "narrative": f"Call {n}: held at a farm.",
                "call_sid": new_sid("CA")}, headers=auth, timeout=15)
            assert answer.status_code == 202, answer.text
            assert answer.json()["spooled"] is True
            given[answer.json()["reference"]] = ("call_log", None)
        assert len(given) == 50  # fifty distinct references handed out
        waiting = requests.get(f"{server.base}/readyz", timeout=15).json()
        assert waiting["status"] == "degraded: spooling"
        held = int(waiting["checks"]["spool"].split()[0])
        assert held >= 50

        server.kill9()  # every gunicorn process, while the spool holds everything
        cluster.start()
        server = Server(env, tmp_path / "gunicorn2.log")
        server.start()
        deadline = time.monotonic() + 180
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = requests.get(f"{server.base}/readyz", timeout=15).json()
            if status["status"] == "ready":
                break
            time.sleep(0.5)
        assert status.get("status") == "ready", (status, server.log.read_text()[-3000:])
        assert status["checks"]["spool"] == "0 waiting"

        with Session(engine) as session:
            references = session.scalars(select(Case.reference)).all()
            assert len(references) == 51  # the 50, plus the call logged before the outage
            assert set(given) <= set(references)
            assert len(set(references)) == len(references)
            replays = session.scalar(select(func.count()).select_from(SpoolReplay))
            assert replays == held  # every spooled item replayed exactly once
            # The texters who answered: their answers are on the case, the emergency paged.
            emergencies = session.scalars(
                select(Case).where(Case.priority == "emergency")).all()
            assert len(emergencies) == 4
            for case in emergencies:
                assert given[case.reference][0] == "sms"
                answers = session.scalars(select(Signal).where(Signal.case_id == case.id)).one()
                assert answers.ivr_path["answers"]["minor"] is True
                assert answers.ivr_path["answers"]["safe_now"] is False
                texts = session.scalar(select(func.count()).select_from(TipMessage)
                                       .where(TipMessage.case_id == case.id))
                assert texts == 4
            pages = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "notify")
                                    ).all()
            kinds = [p.payload["kind"] for p in pages]
            assert kinds.count("emergency_page") == 4
            assert kinds.count("spool_drained") == 1
            # Voice: the recording and transcript reached the call's case.
            voice = session.scalars(select(Signal).where(Signal.channel == "voice")).all()
            assert len(voice) == 13
            assert all(s.recording_sid and s.transcript for s in voice)
            assert all(s.heard_from == "social_media" for s in voice)
            # Audited, and the chain still verifies.
            replayed_events = session.scalar(select(func.count()).select_from(AuditEvent)
                                             .where(AuditEvent.action == "replayed_from_spool"))
            assert replayed_events == held
            report = verify_chain(session)
            assert report.ok, report

        # The references and passphrases handed out during the outage work for follow-up.
        for reference, (channel, passphrase) in given.items():
            if passphrase is None:
                continue
            answer = requests.get(f"{server.base}/api/v1/tips/{reference}",
                                  headers={"X-Tip-Passphrase": passphrase}, timeout=15)
            assert answer.status_code == 200, (channel, reference, answer.text)
        web_ref = next(r for r, (c, _) in given.items() if c == "web")
        more = requests.post(f"{server.base}/api/v1/tips/{web_ref}/messages",
                             json={"body": "They moved them to a van."},
                             headers={"X-Tip-Passphrase": given[web_ref][1]}, timeout=15)
        assert more.status_code == 201, more.text
    finally:
        server.stop()
        engine.dispose()
