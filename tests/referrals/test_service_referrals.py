"""A service referral reaches a provider without an account (issue 13): a real worker
e-mails a signed link (never the story); the link's page lets the provider acknowledge,
accept, decline or report the service given; a tampered or expired link is a 403 page
that changes nothing; answering twice changes nothing more; tested in Chromium too."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from referrals.provider_pages import SALT
from tests.page_clients import csrf_token
from tests.referrals.conftest import wait_until
from workflows.models import AuditEvent
from workflows.providers import ServiceProvider, ServiceReferral

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "hsds"
NARRATIVE = "Canary-Provider-5521 she is kept at the restaurant on Pine St"


def _referral(client, runner, operator, db_session) -> int:
    assert runner.invoke(args=["services", "import", str(SAMPLE)]).exit_code == 0
    tip = client.post(
        "/api/v1/tips", json={"narrative": NARRATIVE, "location": "Pine St, San Antonio"}
    ).get_json()
    cases = client.get(f"/api/v1/cases?reference={tip['reference']}", headers=operator.headers)
    case_id = next(c["id"] for c in cases.get_json()["items"] if c["reference"] == tip["reference"])
    client.put(
        f"/api/v1/cases/{case_id}/screening",
        headers=operator.headers,
        json={
            "facts": {"caller_type": "victim"},
            "indicators": [],
            "consent": {"services": True, "given_by": "victim"},
        },
    )
    shelter = db_session.scalar(
        select(ServiceProvider.id).where(ServiceProvider.hsds_id == "svc-shelter-1")
    )
    made = client.post(
        f"/api/v1/cases/{case_id}/service-referrals",
        headers=operator.headers,
        json={"service_id": shelter, "reason": "A bed tonight; Spanish speaker"},
    )
    assert made.status_code == 201, made.get_json()
    return int(made.get_json()["id"])


def _link_from(mail: str) -> str:
    body = mail.replace("=\n", "")
    found = re.search(r"https?://\S+/provider/r/\S+", body)
    assert found, body
    return "/provider/" + found.group(0).split("/provider/", 1)[1]


@pytest.mark.slow
def test_the_provider_gets_a_link_by_mail_and_answers_through_it(
    app, client, runner, operator, mailbox, start_worker, db_session
) -> None:
    referral_id = _referral(client, runner, operator, db_session)
    start_worker(SMTP_HOST=mailbox.host, SMTP_PORT=str(mailbox.port))
    wait_until(lambda: mailbox.messages, 30, "the provider's e-mail")
    [mail] = mailbox.messages
    assert mail["to"] == ["shelter@casasegura.example.org"]
    assert "Canary-Provider-5521" not in mail["data"]  # the link, never the story
    link = _link_from(mail["data"])

    provider = app.test_client()
    page = provider.get(link)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "A bed tonight; Spanish speaker" in text and "Canary-Provider-5521" not in text
    for answer in ("acknowledge", "accept", "accept", "report_service", "report_service"):
        token = csrf_token(provider.get(link).get_data(as_text=True))
        done = provider.post(
            link, data={"answer": answer, "note": "bed given", "csrf_token": token}
        )
        assert done.status_code == 200, (answer, done.status_code)
    db_session.expire_all()
    referral = db_session.get(ServiceReferral, referral_id)
    assert referral.state == "accepted" and referral.service_given_at is not None
    actions = [e.action for e in db_session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    # Each answer once, however often it was sent.
    assert [a for a in actions if a.startswith("provider_")] == [
        "provider_acknowledge",
        "provider_accept",
        "provider_report_service",
    ]
    late = provider.post(
        link,
        data={
            "answer": "decline",
            "note": "x",
            "csrf_token": csrf_token(provider.get(link).get_data(as_text=True)),
        },
    )
    assert late.status_code == 409


class _LongAgo(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - 30 * 86400


def test_a_tampered_or_expired_link_is_refused_and_changes_nothing(
    app, client, runner, operator, db_session, settings
) -> None:
    referral_id = _referral(client, runner, operator, db_session)
    good = URLSafeTimedSerializer(settings.secret_key, salt=SALT).dumps({"r": referral_id})
    provider = app.test_client()
    assert provider.get(f"/provider/r/{good}").status_code == 200
    tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    other = URLSafeTimedSerializer(settings.secret_key, salt=SALT).dumps({"r": referral_id + 1})
    expired = URLSafeTimedSerializer(settings.secret_key, salt=SALT, signer=_LongAgo).dumps(
        {"r": referral_id}
    )
    forged = URLSafeTimedSerializer("another-secret", salt=SALT).dumps({"r": referral_id})
    for token in (tampered, other, expired, forged, "x" * 3000, "%00"):
        answer = provider.get(f"/provider/r/{token}")
        assert answer.status_code == 403, token[:20]
        token_page = provider.get(f"/provider/r/{good}").get_data(as_text=True)
        posted = provider.post(
            f"/provider/r/{token}", data={"answer": "accept", "csrf_token": csrf_token(token_page)}
        )
        assert posted.status_code == 403
    assert "expired" in provider.get(f"/provider/r/{expired}").get_data(as_text=True)
    db_session.expire_all()
    assert db_session.get(ServiceReferral, referral_id).state == "queued"
    missing = provider.post(
        f"/provider/r/{good}",
        data={
            "answer": "decline",
            "csrf_token": csrf_token(provider.get(f"/provider/r/{good}").get_data(as_text=True)),
        },
    )
    assert missing.status_code == 422  # a decline says why


@pytest.mark.browser
def test_the_provider_page_in_chromium(
    app, browser_page, client, runner, operator, db_session, settings
) -> None:
    referral_id = _referral(client, runner, operator, db_session)
    token = URLSafeTimedSerializer(settings.secret_key, salt=SALT).dumps({"r": referral_id})
    page = browser_page()
    page.goto(f"/provider/r/{token}")
    assert "A bed tonight" in page.locator("#provider-reason").inner_text()
    with page.expect_navigation():
        page.locator("#answer-accept").click()
    assert page.locator("#provider-state").inner_text() == "accepted"
    page.get_by_label(re.compile("Note")).fill("Bed given for two weeks")
    with page.expect_navigation():
        page.locator("#answer-report_service").click()
    db_session.expire_all()
    assert db_session.get(ServiceReferral, referral_id).service_given_at is not None
