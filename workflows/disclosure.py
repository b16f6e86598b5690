"""Disclosure control: k-anonymity for unit records, small-cell suppression for tables.

Unit records (the research extract) carry quasi-identifiers — state, month, age band,
trafficking type, venue, citizenship group — that together can single out a case. Each
row's combination must be shared by at least ``k`` distinct cases; a rarer one climbs
the generalisation ladder (``LADDER``: venue and exact age go first, then the month
becomes a quarter, the state a census region, the quarter a year) until its group holds
``k`` cases, and a row still alone at the top is dropped. Counting is by distinct case,
not by row, so five referrals of one case never make a group of five.

Published tables suppress cells below the threshold and then add complementary
suppression: whenever the suppressed cells of a line that has a published total add up
to 1 or 2, the next smallest cell is suppressed too, so that subtraction from the total
(or from a later, coarser snapshot) never gives back a small count.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

QI_COLUMNS = ("state", "period", "age_band", "trafficking_type", "venue", "citizenship_group")
ANY = "*"  # a quasi-identifier generalised away entirely

CENSUS_REGIONS = {
    "northeast": "CT ME MA NH RI VT NJ NY PA",
    "midwest": "IL IN MI OH WI IA KS MN MO NE ND SD",
    "south": "DE DC FL GA MD NC SC VA WV AL KY MS TN AR LA OK TX",
    "west": "AZ CO ID MT NV NM UT WY AK CA HI OR WA",
    "territories": "AS GU MP PR VI",
}
REGION_OF = {code: region for region, codes in CENSUS_REGIONS.items() for code in codes.split()}
STATES = tuple(sorted(REGION_OF))
AGE_BANDS = ("0-11", "12-14", "15-17", "18-24", "25-34", "35-44", "45-54", "55+")
MINOR_BANDS = frozenset({"0-11", "12-14", "15-17", "minor"})

QI = tuple[str, str, str, str, str, str]


def region(state: str) -> str:
    return REGION_OF.get(state, state)


def broad_age(band: str) -> str:
    if band in ("unknown", ANY):
        return band
    return "minor" if band in MINOR_BANDS else "adult"


def quarter(period: str) -> str:
    if len(period) == 7:  # YYYY-MM
        return f"{period[:4]}-Q{(int(period[5:]) - 1) // 3 + 1}"
    return period


def year(period: str) -> str:
    return period[:4] if period != ANY else period


@dataclass(frozen=True)
class Step:
    """One rung of the ladder: its name, what it coarsens, and how."""

    name: str
    description: str
    apply: Callable[[QI], QI]


def _venue_and_age(t: QI) -> QI:
    return (t[0], t[1], broad_age(t[2]), t[3], ANY, t[5])


def _quarter(t: QI) -> QI:
    return (t[0], quarter(t[1]), t[2], t[3], t[4], t[5])


def _region(t: QI) -> QI:
    return (region(t[0]), t[1], t[2], t[3], t[4], t[5])


def _year(t: QI) -> QI:
    return (t[0], year(t[1]), t[2], t[3], t[4], ANY)


def _everything(_t: QI) -> QI:
    return (ANY,) * 6  # type: ignore[return-value]


# Each rung is coarser than the one before in every column, so a row released at a
# higher rung never tells more than the rung below it would have.
LADDER: tuple[Step, ...] = (
    Step("exact", "as recorded: state, month, age band, type, venue, citizenship", lambda t: t),
    Step("venue_age", "venue removed, age band widened to minor/adult", _venue_and_age),
    Step("quarter", "month widened to the quarter", lambda t: _quarter(_venue_and_age(t))),
    Step("region", "state widened to the census region",
         lambda t: _region(_quarter(_venue_and_age(t)))),
    Step("year", "quarter widened to the year, citizenship group removed",
         lambda t: _year(_region(_quarter(_venue_and_age(t))))),
    Step("all", "every quasi-identifier removed", _everything),
)
DROPPED = len(LADDER)  # the level of a row that is not released at all


@dataclass
class KAnonymity:
    """Counts distinct cases per combination, then decides each combination's rung.

    ``add`` every row first (pass one), ``resolve``, then ``level_of`` each row (pass
    two). ``floor`` lets a dependent row (a victim, a referral) never be released finer
    than its case was. Memory grows with the number of distinct combinations (bounded
    by the quasi-identifiers' domain), never with the number of rows.
    """

    k: int
    _count: dict[tuple[QI, int], int] = field(default_factory=lambda: defaultdict(int))
    # Case ids of combinations still below k (at most k - 1 each), to union exactly.
    _cases: dict[tuple[QI, int], set[int]] = field(default_factory=dict)
    # Rows of one case arrive together: the keys this case already counted.
    _case: int | None = None
    _seen: set[tuple[QI, int]] = field(default_factory=set)
    _level: dict[tuple[QI, int], int] = field(default_factory=dict)

    def add(self, qi: QI, case_id: int, floor: int = 0) -> None:
        key = (qi, floor)
        if case_id != self._case:
            self._case, self._seen = case_id, set()
        if key in self._seen:
            return  # count the case once
        self._seen.add(key)
        self._count[key] += 1
        if self._count[key] < self.k:
            self._cases.setdefault(key, set()).add(case_id)
        else:
            self._cases.pop(key, None)

    def add_group(self, qi: QI, floor: int, count: int, cases: set[int]) -> None:
        """Add ``count`` distinct cases at once (``cases``: their ids while below k).

        Groups added for one key must hold disjoint cases (a case has one combination in
        the table they came from), so their counts add up exactly.
        """
        key = (qi, floor)
        self._count[key] += count
        if self._count[key] < self.k:
            self._cases.setdefault(key, set()).update(cases)
        else:
            self._cases.pop(key, None)

    def resolve(self) -> None:
        """Give every combination the lowest rung (at or above its floor) holding k cases."""
        pending = {key for key, n in self._count.items() if n < self.k or key[1] > 0}
        for key in self._count:
            if key not in pending:
                self._level[key] = 0
        for level, step in enumerate(LADDER):
            groups: dict[QI, list[tuple[QI, int]]] = defaultdict(list)
            for key in pending:
                if key[1] <= level:
                    groups[step.apply(key[0])].append(key)
            for members in groups.values():
                # Exact distinct cases below k; a member at or above k counts as k+.
                big = any(self._count[m] >= self.k for m in members)
                ids: set[int] = set()
                if not big:
                    for m in members:
                        ids |= self._cases[m]
                if big or len(ids) >= self.k:
                    for m in members:
                        self._level[m] = level
                        pending.discard(m)
        for key in pending:
            self._level[key] = DROPPED
        self._seen.clear()

    def level_of(self, qi: QI, floor: int = 0) -> int:
        return self._level[(qi, floor)]

    def summary(self) -> dict[str, int]:
        """Distinct cases released at each rung (and dropped): what the export states."""
        totals = {step.name: 0 for step in LADDER} | {"dropped": 0}
        for key, level in self._level.items():
            name = "dropped" if level == DROPPED else LADDER[level].name
            totals[name] += self._count[key]
        return totals


def release(qi: QI, level: int) -> QI | None:
    """The combination as released at ``level`` (None: the row is not released)."""
    return None if level >= DROPPED else LADDER[level].apply(qi)


# --- published tables -----------------------------------------------------------------


def suppress_line(cells: Mapping[str, int], threshold: int,
                  unknown: Mapping[str, int] | None = None,
                  already: Iterable[str] = ()) -> tuple[set[str], bool]:
    """Which cells of one line (whose total is published) to hide, and must the total go.

    Primary: every non-zero cell below ``threshold``, and ``already`` (cells hidden for
    another reason). Complementary: while what the hidden cells keep unknown adds up to 1
    to ``threshold - 1``, hide the cell left that adds the least unknown; without one, the
    total must be hidden too. ``unknown`` is what a reader cannot work out of a cell
    from elsewhere (its value by default; for a year, what its months hid).
    """
    mass = unknown if unknown is not None else cells
    hidden = {name for name, n in cells.items() if 0 < n < threshold} | set(already)
    while 0 < sum(mass.get(name, 0) for name in hidden) < threshold:
        left = sorted((mass.get(name, 0), n, name) for name, n in cells.items()
                      if name not in hidden and mass.get(name, 0) > 0)
        if not left:
            return hidden, True
        hidden.add(left[0][2])
    return hidden, False
