"""A tipster's safe hours: the window in which a text to their phone may arrive.

A victim's phone may be read by the person who controls them; the tipster says when a
text is safe (e.g. 18:00-22:00 in America/Chicago, the hours they are alone) and whether
only an announcement ("you have a message") may go, never the hotline's words. The
window is stored inside the signal's encrypted ``safe_contact`` JSON; the notification
worker asks ``tipster_safety`` before every text and holds one until ``next_opening``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Protocol
from zoneinfo import ZoneInfo, available_timezones


class SafeContactHolder(Protocol):
    """Anything carrying a ``safe_contact`` JSON text (a signal)."""

    safe_contact: str | None


def parse_hhmm(text: object) -> time:
    """``"18:00"`` as a time; ValueError for anything but 24-hour HH:MM."""
    if (
        not isinstance(text, str) or len(text) != 5 or text[2] != ":"
        or not (text[:2].isdigit() and text[3:].isdigit() and text.isascii())
    ):
        raise ValueError("must be a time as HH:MM (24-hour), e.g. 18:00")
    hours, minutes = int(text[:2]), int(text[3:])
    if hours > 23 or minutes > 59:
        raise ValueError("must be a time as HH:MM (24-hour), e.g. 18:00")
    return time(hours, minutes)


# Files in the zone directory that name no place: "localtime" is this machine's own zone.
NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    # The IANA names only: ZoneInfo() alone would also open any file under the zone path.
    return frozenset(available_timezones()) - NOT_ZONES


def parse_zone(name: object) -> ZoneInfo:
    """An IANA time zone by name (``America/Chicago``); ValueError when unknown."""
    if not isinstance(name, str) or name not in _zone_names():
        raise ValueError("must be an IANA time zone name, e.g. America/Chicago")
    return ZoneInfo(name)


@dataclass(frozen=True)
class SafeWindow:
    """Daily hours, local to ``zone``; ``end`` before ``start`` crosses midnight."""

    start: time
    end: time
    zone: ZoneInfo

    @classmethod
    def from_json(cls, value: Any) -> SafeWindow | None:
        """The stored ``{"start", "end", "timezone"}``, or None when absent or unreadable."""
        if not isinstance(value, dict):
            return None
        try:
            window = cls(parse_hhmm(value.get("start")), parse_hhmm(value.get("end")),
                         parse_zone(value.get("timezone")))
        except ValueError:
            return None
        return window if window.start != window.end else None

    @property
    def zone_name(self) -> str:
        return str(self.zone.key)

    def contains(self, now: datetime) -> bool:
        """Whether ``now`` (aware) falls inside the window, start included, end not."""
        local = now.astimezone(self.zone).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # crosses midnight

    def next_opening(self, now: datetime) -> datetime:
        """The first opening of the window after ``now``, in UTC.

        Built from local dates, so a daylight-saving change moves it with the clocks; a
        start in the spring-forward gap opens at the first real instant after it.
        """
        today = now.astimezone(self.zone).date()
        openings = (
            datetime.combine(today + timedelta(days=offset), self.start, self.zone)
            for offset in (-1, 0, 1, 2)
        )
        return min(o for o in (x.astimezone(UTC) for x in openings) if o > now)


@dataclass(frozen=True)
class TipsterSafety:
    """What a tipster said about texts: the window (if any) and announce-only."""

    window: SafeWindow | None = None
    announce_only: bool = False

    def hold_until(self, now: datetime) -> datetime | None:
        """When a text due ``now`` may go, or None when it may go now."""
        if self.window is None or self.window.contains(now):
            return None
        return self.window.next_opening(now)


def tipster_safety(signals: Iterable[SafeContactHolder]) -> TipsterSafety:
    """The latest stated window and announce-only choice across a case's signals.

    Signals come oldest first; a later call that states a window replaces an earlier
    one, and one that says nothing about it leaves it as it was.
    """
    window: SafeWindow | None = None
    announce_only = False
    for signal in signals:
        safe = _loads(signal.safe_contact)
        if safe.get("safe_window") is not None:
            window = SafeWindow.from_json(safe["safe_window"]) or window
        if isinstance(safe.get("announce_only"), bool):
            announce_only = safe["announce_only"]
    return TipsterSafety(window, announce_only)


def _loads(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
