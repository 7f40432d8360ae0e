"""The figures table: rows beside their targets, printed and written as JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    section: str
    measure: str
    value: float | None  # None: not measured (the note says why)
    unit: str
    target: str = ""
    met: bool | None = None  # None: no target, or not measured
    note: str = ""

    def shown(self) -> str:
        if self.value is None:
            return "n/a"
        if self.unit == "×":
            return f"{self.value:.3g}×"
        digits = 0 if abs(self.value) >= 100 else 1 if abs(self.value) >= 10 else 2 \
            if abs(self.value) >= 1 else 3
        return f"{self.value:,.{digits}f} {self.unit}".rstrip()


def at_least(value: float | None, target: float) -> bool | None:
    return None if value is None else value >= target


def at_most(value: float | None, target: float) -> bool | None:
    return None if value is None else value <= target


def below(value: float | None, target: float) -> bool | None:
    return None if value is None else value < target


def percentile(values: Sequence[float], p: float) -> float | None:
    """Linear interpolation between closest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def render(rows: Sequence[Row], machine: dict[str, str], header: str) -> str:
    lines = [header, ""]
    lines += [f"  {key:<8} {value}" for key, value in machine.items()]
    widths = (max(len(r.measure) for r in rows), max(len(r.shown()) for r in rows),
              max(len(r.target) for r in rows))
    sections: dict[str, list[Row]] = {}  # in order of first appearance
    for r in rows:
        sections.setdefault(r.section, []).append(r)
    for section, members in sections.items():
        lines += ["", section]
        lines += [_line(r, widths) for r in members]
    return "\n".join(lines)


def _line(r: Row, widths: tuple[int, int, int]) -> str:
    verdict = {True: "met", False: "MISSED", None: ""}[r.met]
    line = (f"  {r.measure:<{widths[0]}}  {r.shown():>{widths[1]}}  "
            f"{r.target:<{widths[2]}}  {verdict:<6}  {r.note}")
    return line.rstrip()


def write_json(path: Path, rows: Sequence[Row], machine: dict[str, str],
               run: dict[str, Any]) -> None:
    path.write_text(json.dumps({"machine": machine, "run": run,
                                "rows": [asdict(r) for r in rows]}, indent=2) + "\n",
                    encoding="utf-8")
