"""The table the bench prints, and its JSON form for BENCHMARKS.md and the smoke test."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.environment import cpu_count


@dataclass
class Row:
    """One measured figure, with the baseline it is compared to and the target."""

    section: str
    what: str
    value: float
    unit: str
    p50_ms: float | None = None
    p99_ms: float | None = None
    ratio: float | None = None
    ratio_to: str = ""
    target: str = ""
    ok: bool | None = None
    note: str = ""


@dataclass
class Report:
    smoke: bool
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    load_at_start: float = field(default_factory=lambda: os.getloadavg()[0])

    def add(self, row: Row) -> Row:
        if self.smoke:
            row.ok = None  # tiny sizes judge nothing
        self.rows.append(row)
        print(f"  {format_row(row)}", flush=True)
        return row

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def header(self) -> str:
        return (
            f"machine: {cpu_count()} cores, {platform.machine()}, Python "
            f"{platform.python_version()}, {platform.platform(terse=True)}, "
            f"load average {self.load_at_start:.1f} at start, {os.getloadavg()[0]:.1f} now; "
            f"run started {self.started}"
            + (" (SMOKE: tiny sizes, figures meaningless)" if self.smoke else "")
        )

    def table(self) -> str:
        cols = ["section", "what", "value", "p50 ms", "p99 ms", "ratio", "target", "met", "note"]
        body = [
            [
                r.section,
                r.what,
                f"{_num(r.value)} {r.unit}",
                _num(r.p50_ms),
                _num(r.p99_ms),
                f"{r.ratio:.2f}x {r.ratio_to}" if r.ratio is not None else "",
                r.target,
                {True: "yes", False: "NO", None: ""}[r.ok],
                r.note,
            ]
            for r in self.rows
        ]
        widths = [max([len(c), *(len(line[i]) for line in body)]) for i, c in enumerate(cols)]
        out = [self.header(), ""]
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |")
        out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for line in body:
            cells = zip(line, widths, strict=True)
            out.append("| " + " | ".join(c.ljust(w) for c, w in cells) + " |")
        if self.notes:
            out.append("")
            out.extend(f"- {n}" for n in self.notes)
        return "\n".join(out)

    def save(self, path: Path) -> None:
        data = {"header": self.header(), "smoke": self.smoke, "notes": self.notes,
                "rows": [asdict(r) for r in self.rows]}
        path.write_text(json.dumps(data, indent=2))


def _num(value: float | None) -> str:
    if value is None:
        return ""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_row(r: Row) -> str:
    bits = [f"[{r.section}] {r.what}: {_num(r.value)} {r.unit}"]
    if r.p50_ms is not None:
        bits.append(f"p50 {_num(r.p50_ms)} ms, p99 {_num(r.p99_ms)} ms")
    if r.ratio is not None:
        bits.append(f"{r.ratio:.2f}x {r.ratio_to}")
    if r.target and r.ok is not None:
        bits.append(f"target {r.target}: {'met' if r.ok else 'MISSED'}")
    return "; ".join(bits)
