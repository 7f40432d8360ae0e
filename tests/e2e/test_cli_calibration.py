"""What the operator types: `accu-ingest calibration JOB` and `accu-ingest results` on the real
Agilent standards, and a chemistry setting that is wrong stopping start-up by its name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from support.workers import WorkerProcess

LEVELS = [12, 25, 50, 100, 250]
MAIN_AREA = {12: 56.9860, 25: 107.7670, 50: 214.6817, 100: 411.4072, 250: 1021.4570}


def test_calibration_command_prints_curve_points_and_flags(tmp_path: Path, corpus: Path) -> None:
    folder = tmp_path / "exports" / "agilent-1290"
    folder.mkdir(parents=True)
    for level in LEVELS:
        shutil.copy(corpus / "agilent-1290" / f"{level}_Report.csv", folder)
    config = tmp_path / "accu-ingest.toml"
    config.write_text('[methods.default]\nlevel_corrections = {"12" = 12.5}\n'
                      'reason = "CoA 4711: level 12 is 12.5"\n'
                      "exclude_levels = [250]\npurity_min_pct = 98.0\n", encoding="utf-8")
    w = WorkerProcess(tmp_path)
    assert w.cli("ingest", str(folder), "--config", str(config)).returncode == 0

    text = w.cli("calibration", "agilent-1290", "--config", str(config))
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith("job agilent-1290 (id 1), method 1290 AOD9604 method.amx")
    # 12 → 12.5 and 250 left out: the line through the other four, fitted independently.
    slope, intercept = np.polyfit([12.5, 25, 50, 100], [MAIN_AREA[lv] for lv in LEVELS[:4]], 1)
    assert [f"{slope:.4f}", "area/(µg/mL)"] in [line.split()[1:3] for line in lines
                                                if line.split()[:1] == ["slope"]]
    assert [f"{intercept:.4f}", "area"] in [line.split()[1:3] for line in lines
                                            if line.split()[:1] == ["intercept"]]
    assert "flags      level_corrected, point_excluded" in text.stdout
    rows = [line.split() for line in lines if line.strip().endswith("_Report.csv")
            or "excluded by configuration" in line]
    assert [r[0] for r in rows] == ["12", "25", "50", "100", "250"]  # natural, by level
    assert rows[0][:2] == ["12", "12.5"] and rows[-1][6] == "yes"

    by_id = json.loads(w.cli("calibration", "1", "--json", "--config", str(config)).stdout)
    (curve,) = by_id["curves"]
    assert by_id["job"] == "agilent-1290" and curve["points_used"] == 4
    assert [p["excluded"] for p in curve["points"]] == [False] * 4 + [True]
    assert all(p["back_calculated"] is not None and p["pct_error"] is not None
               for p in curve["points"])
    assert curve["unit"] == "µg/mL" and curve["r2"] > 0.999

    unknown = w.cli("calibration", "no-such-run")
    assert unknown.returncode == 1 and "no job named or numbered 'no-such-run'" in unknown.stderr

    results = w.cli("results", "--config", str(config)).stdout.splitlines()
    assert results[0].split()[1:4] == ["(curve", "default)", "calibration_slope"]
    std12 = [line for line in results if " Std_12 " in line]
    # Reference: the mean RT of the points used (250 excluded) = 7.63275; Std_12 is at 7.643.
    assert any("identity" in line and "conforms" in line and "ΔRT +0.010 min vs 7.633" in line
               for line in std12)
    # Standards are not judged against the purity criterion: only samples are.
    assert not any("acceptance" in line for line in results)


def test_a_wrong_chemistry_setting_stops_with_its_name(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[methods.AOD9604]\nrt_tolerance_min = -0.1\n"
                      'concentration_unit = "mg"\n', encoding="utf-8")
    w = WorkerProcess(tmp_path)
    out = w.cli("results", "--config", str(config))
    assert out.returncode == 2
    assert "methods.AOD9604.rt_tolerance_min" in out.stderr
    assert "methods.AOD9604.concentration_unit" in out.stderr
    assert "[methods.AOD9604] table" in out.stderr
