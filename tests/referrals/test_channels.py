"""The channel registry (referrals.channels): one class a channel, looked up by name, and
a new channel is one class and one line away from an agency's channel list."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from config.settings import Settings
from referrals import messaging
from referrals.agencies import load_agencies
from referrals.channels import REGISTRY, Channel, Message, Receipt, channel_for
from referrals.delivery import Outgoing, send_outgoing
from workflows.catalog_files import CatalogError


def test_each_channel_is_found_by_name_with_what_callers_need_to_know() -> None:
    assert set(REGISTRY) == {"sms", "whatsapp", "email", "webhook"}
    assert channel_for("sms", "+15555550100").name == "sms"
    # Twilio sends both through one API: a number's rows say sms, the address decides.
    assert channel_for("sms", "whatsapp:+15555550100").name == "whatsapp"
    assert channel_for("email").has_subject and not channel_for("sms").has_subject
    assert channel_for("whatsapp").templates and not channel_for("sms").templates
    assert channel_for("sms").opt_out and not channel_for("email").opt_out
    # Only the webhook's far end dedupes a repeat (the Idempotency-Key).
    assert [n for n, c in REGISTRY.items() if not c.at_most_once] == ["webhook"]
    with pytest.raises(messaging.ChannelNotConfigured):
        channel_for("fax")


class Pager(Channel):
    """A channel added the documented way (in the test: by the one line below)."""

    name = "pager"
    agency_setting = "PAGER"
    sent: list[tuple[str, Message]] = []

    def send(self, settings: Settings, to: str, message: Message) -> Receipt:
        self.sent.append((to, message))
        return Receipt(provider_id="page-1")


def test_a_new_channel_is_one_class_and_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "agencies.yaml"
    path.write_text("agencies:\n  - code: NGO\n    name: N\n    channels: [pager]\n")
    settings = Settings(env={"AGENCY_NGO_PAGER": "pager-42"})
    with pytest.raises(CatalogError, match="channels must be a list of webhook, email, sms"):
        load_agencies(path, settings)  # before the line: agencies cannot list it

    monkeypatch.setitem(REGISTRY, "pager", Pager())  # the one line
    agency = load_agencies(path, settings)["NGO"]
    assert agency.ready_channels == ("pager",)
    runtime = SimpleNamespace(settings=settings)
    send_outgoing(runtime, agency, Outgoing("pager", notice="New referral 7", subject="s"))
    assert [(to, m.text) for to, m in Pager.sent] == [("pager-42", "New referral 7")]
