"""Generated Agilent OpenLab "Report" CSVs with varied, valid values (and their known peaks).

The layout follows the lab's real exports (../shared/corpus/agilent-1290/*_Report.csv): method
lines, the signal table that names the wavelength, then ``Height,Area,Area%,Peak Begin Time,Peak
End Time,RT [min]``, the peak rows and ``Sum,<total area>``. Values are printed at the precision
the instrument prints, so what a test expects is exactly what the file says.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

HEADER = ["Height", "Area", "Area%", "Peak Begin Time", "Peak End Time", "RT [min]"]


@dataclass(frozen=True)
class GenPeak:
    """One peak row as printed: the strings are the cells, the floats what they must parse to."""

    height: float
    area: float
    area_pct: float
    begin: float
    end: float
    rt: float

    def cells(self) -> list[str]:
        return [f"{self.height:.4f}", f"{self.area:.4f}", f"{self.area_pct:.4f}",
                f"{self.begin:.3f}", f"{self.end:.3f}", f"{self.rt:.3f}"]


def random_peaks(rng: random.Random, n: int | None = None) -> list[GenPeak]:
    """1–8 peaks, one dominant, retention times increasing, areas and Area% consistent."""
    n = n if n is not None else rng.randint(1, 8)
    areas = [round(rng.uniform(0.05, 40.0), 4) for _ in range(n)]
    areas[rng.randrange(n)] = round(rng.uniform(100.0, 5000.0), 4)
    total = round(math.fsum(areas), 4)
    peaks = []
    rt = rng.uniform(1.0, 3.0)
    for area in areas:
        rt = round(rt + rng.uniform(0.1, 1.5), 3)
        half = round(rng.uniform(0.03, 0.2), 3)
        peaks.append(GenPeak(height=round(area * rng.uniform(0.1, 0.5), 4), area=area,
                             area_pct=round(area / total * 100, 4), begin=round(rt - half, 3),
                             end=round(rt + half, 3), rt=rt))
    return peaks


def total_of(peaks: list[GenPeak]) -> str:
    return f"{math.fsum(p.area for p in peaks):.4f}"


def report(peaks: list[GenPeak], *, method: str = "1290 generated method.amx",
           wavelength: float = 220.0, delimiter: str = ",", decimal_comma: bool = False,
           eol: str = "\n", total: str | None = None, quote: bool = False,
           sample_name: str | None = None) -> str:
    """The text of one Report export; ``total`` overrides the printed Sum; ``quote`` prints
    the table's numbers in double quotes; ``sample_name`` adds a ``Sample Name:`` line."""
    def row(cells: list[str]) -> str:
        if decimal_comma:
            cells = [c.replace(".", ",") for c in cells]
        if quote:
            cells = [f'"{c}"' for c in cells]
        return delimiter.join(cells)

    def meta(*cells: str) -> str:
        return delimiter.join(cells)

    lines = [
        meta("Acquisition Method:", method),
        *([meta("Sample Name:", sample_name)] if sample_name is not None else []),
        meta("Path:", r"C:\Results\generated.rslt"),
        "Method parameters are filtered - only a subset is displayed",
        meta("2", "DAD Method"),
        "Signal table",
        meta("Acquire", "Signal", "Wavelength", "Bandwidth", "Use Ref.", "Ref Wavel.",
             "Ref Bandw."),
        meta("Yes", "Signal A", f"{wavelength:.1f} nm", "4.0 nm", "Yes", "360.0 nm", "100.0 nm"),
        meta("No", "Signal B", "", "", "", "", ""),
        meta("3.1", "Left Temperature Control"),
        meta("Temperature Control Mode:", "Temperature Set", "Temperature:", "30.0 °C"),
        meta("5.2", "Injection"),
        meta("Needle Wash Mode:", "Standard Wash", "Injection Volume:", "5.00 µL"),
        "Method Audit Trail",
        "No method audit trail available",
        delimiter.join(HEADER),
        *(row(p.cells()) for p in peaks),
        delimiter.join(["Sum", (total or total_of(peaks)).replace(".", ",") if decimal_comma
                        else (total or total_of(peaks)), "", "", "", ""]),
        "",
    ]
    return eol.join(lines)


def report_bytes(seed: int, peaks: int = 4) -> bytes:
    """A valid Report CSV of ``peaks`` random peaks, the same for the same ``seed``."""
    return report(random_peaks(random.Random(seed), peaks)).encode()
