"""End to end on the real Agilent 1290 exports: peak tables → main peaks → curve → identity.

The peak table is read here with a minimal csv reader (not the project's parser, which is built
and tested elsewhere) so these tests check the chemistry on the files' own numbers.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from support.corpus import CORPUS

from worker.chemistry.calibration import Standard, fit_calibration
from worker.chemistry.identity import identity
from worker.chemistry.purity import Injection, PeakInput, injection_purity, select_main_peak

AGILENT = CORPUS / "agilent-1290"
LEVELS = [12, 25, 50, 100, 250]
EXPECTED = {12: (5, 56.9860, 72.7608, 7.643), 25: (4, 107.7670, 87.9293, 7.633),
            50: (7, 214.6817, 88.6495, 7.631), 100: (5, 411.4072, 96.7426, 7.624),
            250: (7, 1021.4570, 97.8468, 7.603)}

pytestmark = pytest.mark.usefixtures("corpus")  # skipped without it, a failure under CI


def peak_table(path: Path) -> list[PeakInput]:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    start = next(i for i, r in enumerate(rows) if r[:3] == ["Height", "Area", "Area%"])
    peaks = []
    for r in rows[start + 1:]:
        if not r or r[0] == "Sum":
            break
        peaks.append(PeakInput(rt_min=float(r[5]), area=float(r[1]), area_pct=float(r[2])))
    return peaks


def test_main_peaks_fit_and_identity_from_the_files() -> None:
    standards = []
    for level in LEVELS:
        peaks = peak_table(AGILENT / f"{level}_Report.csv")
        n, area, pct, rt = EXPECTED[level]
        assert len(peaks) == n
        main = select_main_peak(peaks)
        assert main is not None
        assert (main.area, main.area_pct, main.rt_min) == (area, pct, rt)
        c = injection_purity(Injection(f"{level}_Report.csv", peaks))
        assert c.value == pct and len(c.steps[0].inputs["peaks"]) == n
        standards.append(Standard(f"{level}_Report.csv", level, main.area, main.rt_min))

    curve = fit_calibration(standards)
    assert (f"{curve.slope:.4f}", f"{curve.intercept:.4f}", f"{curve.r2:.5f}") == (
        "4.0511", "8.3907", "0.99996")
    corrected = fit_calibration(standards, corrections={12: 12.5})
    assert (f"{corrected.slope:.4f}", f"{corrected.intercept:.4f}", f"{corrected.r2:.5f}") == (
        "4.0552", "7.6312", "0.99996")
    assert f"{curve.mean_rt_min:.4f}" == "7.6268"
    for s in standards:
        assert s.rt_min is not None and abs(s.rt_min - curve.mean_rt_min) < 0.024
        assert identity([s.rt_min], curve_mean_rt=curve.mean_rt_min).value is True
