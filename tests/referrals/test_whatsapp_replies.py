"""A hotline reply to a WhatsApp tipster goes through a real worker and the twilio SDK to
the local fake Twilio, to the ``whatsapp:`` address; outside WhatsApp's 24-hour window only
the configured template goes ("you have a reply"), never the reply itself (issue 18)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from intake.models import SmsConversation
from intake.services import add_tip_message
from referrals.models import Notification
from tests.intake.test_sms import Texter
from tests.referrals.conftest import wait_until
from workflows.db import transaction, utcnow
from workflows.models import Case, User
from workflows.outbox import add_outbox_message

WHATSAPP = "whatsapp:+12025550188"
TEMPLATE = "HX" + "0" * 32


def _reply(app, operator, text: str) -> None:
    with app.extensions["runtime"].session() as session, transaction(session):
        case = session.scalars(select(Case)).one()
        op = session.scalar(select(User).where(User.username == operator.username))
        message = add_tip_message(session, case, text, direction="out", author=op.username)
        add_outbox_message(
            session,
            "notify",
            payload={
                "kind": "tipster_reply",
                "case_id": case.id,
                "referral_id": None,
                "message_id": message.id,
            },
        )


@pytest.mark.slow
def test_replies_reach_whatsapp_inside_the_window_and_only_a_template_outside(
    app, client, operator, twilio_api, start_worker, db_session
) -> None:
    texter = Texter(client, number=WHATSAPP)
    texter.send("They keep the workers in a trailer behind the farm")
    for answer in ("Route 9 farm", "no", "yes", "yes"):  # ... may we text you back? yes
        texter.send(answer)
    start_worker(TWILIO_API_BASE_URL=twilio_api.url, TWILIO_WHATSAPP_TEMPLATE_SID=TEMPLATE)

    _reply(app, operator, "Thank you. How many workers are there?")
    wait_until(lambda: len(twilio_api.sent) == 1, 30, "the reply inside the window")
    [inside] = twilio_api.sent
    assert inside["To"] == WHATSAPP and inside["From"] == "whatsapp:+15005550006"
    assert "How many workers are there?" in inside["Body"] and "ContentSid" not in inside

    with app.extensions["runtime"].session() as session, transaction(session):
        session.execute(update(SmsConversation).values(updated_at=utcnow() - timedelta(hours=25)))
    _reply(app, operator, "Are you still at the farm?")
    wait_until(lambda: len(twilio_api.sent) == 2, 30, "the template outside the window")
    outside = twilio_api.sent[1]
    assert outside["To"] == WHATSAPP and outside["ContentSid"] == TEMPLATE
    assert "Body" not in outside  # the reply itself waits for the tipster's next message

    def states() -> list[str]:
        db_session.expire_all()
        return [n.state for n in db_session.scalars(select(Notification).order_by(Notification.id))]

    # Twilio has the request a moment before the worker commits what it answered.
    wait_until(lambda: states() == ["sent", "sent"], 30, "both notifications recorded sent")
