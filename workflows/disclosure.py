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


_CODE_BITS = 16  # each quasi-identifier's value as a number below 65,536
_CODE_MASK = (1 << _CODE_BITS) - 1
_FLOOR_BITS = 3  # a floor is a rung (0-5) or DROPPED (6)
_FLOOR_MASK = (1 << _FLOOR_BITS) - 1
_ONE = 1 << _FLOOR_BITS  # one case, in a table value


class Codebook:
    """Each quasi-identifier column's values numbered once, so that a combination packs
    into one int (``pack``): small to count by, quick to hash, and shared by the tables
    of one extract so a case's combination is packed once for all of them."""

    def __init__(self) -> None:
        self._codes: tuple[dict[str, int], ...] = tuple({} for _ in QI_COLUMNS)
        self._values: tuple[list[str], ...] = tuple([] for _ in QI_COLUMNS)

    def pack(self, qi: QI) -> int:
        """The combination as an int whose low bits are free for a floor."""
        key = 0
        for codes, values, value in zip(self._codes, self._values, qi, strict=True):
            code = codes.get(value)
            if code is None:
                code = codes[value] = len(values)
                if code > _CODE_MASK:
                    raise ValueError("too many distinct values of one quasi-identifier")
                values.append(value)
            key = key << _CODE_BITS | code
        return key << _FLOOR_BITS

    def unpack(self, key: int) -> QI:
        key >>= _FLOOR_BITS
        out = []
        for values in reversed(self._values):
            out.append(values[key & _CODE_MASK])
            key >>= _CODE_BITS
        out.reverse()
        return tuple(out)  # type: ignore[return-value]


@dataclass
class KAnonymity:
    """Counts distinct cases per combination, then decides each combination's rung.

    ``add`` every row first (pass one), ``resolve``, then ``level_of`` each row (pass
    two). ``floor`` lets a dependent row (a victim, a referral) never be released finer
    than its case was. Memory grows with the number of distinct combinations (bounded
    by the quasi-identifiers' domain), never with the number of rows: a combination is
    one packed int (``Codebook``), its count and rung one more, and case ids are kept for the
    rare case counted under several combinations of one table only, which is all an exact
    count of distinct cases needs when combinations merge. ``add_key`` and
    ``level_of_key`` take a combination already packed with ``codebook``.
    """

    k: int
    codebook: Codebook = field(default_factory=Codebook)
    # Per key: distinct cases << 3 | rung (one dict, not two: it is most of the memory).
    _table: dict[int, int] = field(default_factory=dict)
    # Cases counted under more than one key: their keys, so a merged group counts them once.
    _shared: dict[int, frozenset[int]] = field(default_factory=dict)
    # Rows of one case arrive together: the keys this case already counted.
    _case: int | None = None
    _seen: set[int] = field(default_factory=set)

    def add(self, qi: QI, case_id: int, floor: int = 0) -> None:
        self.add_key(self.codebook.pack(qi), case_id, floor)

    def add_key(self, packed: int, case_id: int, floor: int = 0) -> None:
        key = packed | floor
        if case_id != self._case:
            self._case = case_id
            self._seen.clear()
        if key in self._seen:
            return  # count the case once
        if self._seen:
            self._shared[case_id] = frozenset((*self._seen, key))
        self._seen.add(key)
        self._table[key] = self._table.get(key, 0) + _ONE

    def resolve(self) -> None:
        """Give every combination the lowest rung (at or above its floor) holding k cases."""
        k, table = self.k, self._table
        pack, unpack = self.codebook.pack, self.codebook.unpack
        pending = {key for key, n in table.items() if n >> _FLOOR_BITS < k or key & _FLOOR_MASK}
        for level, step in enumerate(LADDER):
            # Rung 0 (as recorded) groups a combination with itself alone: one below k
            # stays below k there, and one with a floor above 0 does not take part.
            members = [key for key in pending if 0 < level >= key & _FLOOR_MASK]
            if not members:
                continue
            group_of = {key: pack(step.apply(unpack(key))) for key in members}
            cases: dict[int, int] = {}
            for key, group in group_of.items():
                cases[group] = cases.get(group, 0) + (table[key] >> _FLOOR_BITS)
            for keys in self._shared.values():  # a case under several members counts once
                hits: dict[int, int] = {}
                for key in keys:
                    if key in group_of:
                        hits[group_of[key]] = hits.get(group_of[key], 0) + 1
                for group, n in hits.items():
                    cases[group] -= n - 1
            for key, group in group_of.items():
                if cases[group] >= k:
                    table[key] |= level
                    pending.discard(key)
        for key in pending:
            table[key] |= DROPPED
        self._seen.clear()

    def level_of(self, qi: QI, floor: int = 0) -> int:
        return self.level_of_key(self.codebook.pack(qi), floor)

    def level_of_key(self, packed: int, floor: int = 0) -> int:
        key = packed | floor
        return self._table[key] & _FLOOR_MASK

    def summary(self) -> dict[str, int]:
        """Distinct cases released at each rung (and dropped): what the export states."""
        totals = {step.name: 0 for step in LADDER} | {"dropped": 0}
        names = [step.name for step in LADDER] + ["dropped"]
        for value in self._table.values():
            totals[names[value & _FLOOR_MASK]] += value >> _FLOOR_BITS
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
