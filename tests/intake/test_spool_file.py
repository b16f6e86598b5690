"""The spool file itself: encrypted at rest, a Twilio retry spooled once, leases, outage record."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from intake.spool import Spool
from workflows.pii import generate_key, keyring


def _spool(tmp_path: Path) -> Spool:
    keyring.configure((generate_key(),))
    return Spool(tmp_path / "spool.sqlite3")


def test_items_are_encrypted_at_rest_and_durable_across_reopening(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.put("web", {"data": {"narrative": "girls kept above the nail salon"}}, reference="R1")
    raw = sqlite3.connect(tmp_path / "spool.sqlite3").execute("SELECT payload FROM items")
    assert b"nail salon" not in raw.fetchone()[0].encode()
    again = Spool(tmp_path / "spool.sqlite3")  # another process opening the same file
    [item] = again.claim(10, 60)
    assert item.payload["data"]["narrative"] == "girls kept above the nail salon"
    journal = sqlite3.connect(tmp_path / "spool.sqlite3").execute("PRAGMA journal_mode")
    assert journal.fetchone()[0] == "wal"


def test_a_repeated_dedupe_key_returns_the_item_already_held(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    first = spool.put("sms", {"body": "a"}, dedupe="sms:SM1", reference="HT-AAAA-BBBB")
    second = spool.put("sms", {"body": "a"}, dedupe="sms:SM1", reference="HT-CCCC-DDDD")
    assert second.id == first.id and second.reference == "HT-AAAA-BBBB"
    assert spool.count() == 1


def test_a_claimed_item_is_skipped_by_other_drainers_until_its_lease_ends(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.put("web", {"n": 1})
    spool.put("web", {"n": 2})
    mine = spool.claim(1, 60)
    theirs = spool.claim(10, 60)
    assert [i.payload["n"] for i in mine] == [1]
    assert [i.payload["n"] for i in theirs] == [2]
    assert spool.claim(10, 60) == []
    spool.release(mine[0], "database unreachable")
    spool.done(theirs[0])
    assert spool.count() == 1


def test_one_drainer_at_a_time_and_the_outage_is_cleared_once(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    assert spool.take_drain_lease("a", 60)
    assert not spool.take_drain_lease("b", 60)
    spool.drop_drain_lease("a")
    assert spool.take_drain_lease("b", 60)
    item = spool.put("web", {})
    since, count = spool.outage()  # type: ignore[misc]
    assert count == 1
    assert not spool.close_outage(since)  # not while it holds items
    [claimed] = spool.claim(1, 60)
    assert claimed.id == item.id
    spool.done(claimed)
    assert spool.close_outage(since)
    assert not spool.close_outage(since)  # the second process finds it cleared
    assert spool.outage() is None


def test_sms_senders_keep_one_reference_and_stop_is_remembered(tmp_path: Path) -> None:
    spool = _spool(tmp_path)
    spool.put("sms", {}, dedupe="sms:1", sender_hash="h", reference="HT-1", note="es")
    spool.put("sms", {}, dedupe="sms:2", sender_hash="h", reference="HT-1", note="es")
    assert spool.sender_reference("h") == ("HT-1", "es", 2)
    assert spool.sender_reference("other") is None
    spool.put("sms", {}, dedupe="sms:3", sender_hash="h", note="STOP")
    assert spool.sender_last_keyword("h") == "STOP"
