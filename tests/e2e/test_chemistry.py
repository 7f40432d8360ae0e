"""End to end: the calibration curve, identity, quantity and acceptance as files land in a
job — on the real Agilent standards, and on small synthetic OpenLab PeakData exports for what the
corpus does not have (samples, a late standard, a re-export, flags, ten injections)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from support.workers import WorkerProcess, wait_for, write_config

from worker.record.models import AuditEvent, Result, Sample

LEVELS = [12, 25, 50, 100, 250]
# Main-peak (level, area) of the five *_Report.csv, as the files print them (corpus README).
CORPUS_MAIN = {12: 56.9860, 25: 107.7670, 50: 214.6817, 100: 411.4072, 250: 1021.4570}


def peakdata(sample_name: str, peaks: list[tuple[float, float]]) -> str:
    """An OpenLab PeakData export: the peak table, its Sum row, then the metadata lines."""
    total = round(sum(area for _, area in peaks), 4)
    lines = ["Height,Area,Area%,Peak Begin Time,Peak End Time,RT [min]"]
    for rt, area in peaks:
        lines.append(f"{area / 10:.4f},{area:.4f},{area / total * 100:.4f},"
                     f"{rt - 0.1:.3f},{rt + 0.1:.3f},{rt:.3f}")
    lines += [f"Sum,{total:.4f}", "", f"Sample name:,{sample_name}",
              "Acquisition Method:,synthetic.amx"]
    return "\n".join(lines) + "\n"


def standard(folder: Path, name: str, area: float, rt: float = 7.600) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}_PeakData.csv").write_text(
        peakdata(name, [(rt - 1.0, 1.5), (rt, area)]), encoding="utf-8")


def injection(folder: Path, sample: str, n: int, area: float, rt: float = 7.620,
              analyte: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{sample}_Inj_{n}" + (f"_{analyte}" if analyte else "")
    (folder / f"{name}_PeakData.csv").write_text(
        peakdata(name, [(rt - 2.0, 2.0), (rt, area)]), encoding="utf-8")


def current(job: str | None = None, **where: Any) -> list[Result]:
    query = Result.select().where(Result.superseded == False)  # noqa: E712
    for field, value in where.items():
        query = query.where(getattr(Result, field) == value)
    return [r for r in query if job is None or r.job.name == job]


def one(kind: str, sample: str, job: str) -> Result:
    rows = [r for r in current(job, kind=kind) if r.sample and r.sample.sample_id == sample]
    assert len(rows) == 1, f"{len(rows)} current {kind} rows for {sample}"
    return rows[0]


def calibration(w: WorkerProcess, job: str, *config: str) -> dict[str, Any]:
    out = w.cli("calibration", job, "--json", *config)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert len(report["curves"]) == 1
    return report["curves"][0]


def test_corpus_standards_give_the_lab_curve_and_conform(tmp_path: Path, corpus: Path,
                                                         open_db) -> None:
    folder = tmp_path / "exports" / "agilent-1290"
    folder.mkdir(parents=True)
    for level in LEVELS:
        shutil.copy(corpus / "agilent-1290" / f"{level}_Report.csv", folder)

    plain = WorkerProcess(tmp_path / "plain")
    assert plain.cli("ingest", str(folder)).returncode == 0
    curve = calibration(plain, "agilent-1290")
    assert (f"{curve['slope']:.4f}", f"{curve['intercept']:.4f}", f"{curve['r2']:.5f}") == (
        "4.0511", "8.3907", "0.99996")
    assert curve["unit"] == "µg/mL" and curve["flags"] == []
    assert [p["label"] for p in curve["points"]] == [f"{lv}_Report.csv" for lv in LEVELS]
    assert [p["area"] for p in curve["points"]] == [CORPUS_MAIN[lv] for lv in LEVELS]
    # An independent fit of the same points (numpy's least squares) agrees to 1e-9.
    slope, intercept = np.polyfit(LEVELS, [CORPUS_MAIN[lv] for lv in LEVELS], 1)
    assert abs(curve["slope"] - slope) < 1e-9 and abs(curve["intercept"] - intercept) < 1e-9
    assert f"{curve['mean_rt_min']:.4f}" == "7.6268"

    rows = json.loads(plain.cli("results", "--json").stdout)
    identity = [r for r in rows if r["kind"] == "identity"]
    assert sorted(r["sample"] for r in identity) == sorted(f"Std_{lv}" for lv in LEVELS)
    assert {r["text"] for r in identity} == {"conforms"} and {r["value"] for r in identity} == {
        None}
    open_db(plain.data)
    for r in current(kind="identity"):
        inputs = json.loads(r.inputs)
        assert abs(inputs["delta_min"]) < 0.024 and inputs["reference_rt"] == curve["mean_rt_min"]
    assert not AuditEvent.select().where(AuditEvent.event == "calibration_choices").exists()

    # The file name rounds 12.5 µg/mL to 12: corrected in the configuration, and audited.
    config = tmp_path / "corrected.toml"
    config.write_text('[methods.default]\nlevel_corrections = {"12" = 12.5}\n'
                      'reason = "CoA 4711: level 12 is 12.5"\n', encoding="utf-8")
    fixed = WorkerProcess(tmp_path / "fixed")
    assert fixed.cli("ingest", str(folder), "--config", str(config)).returncode == 0
    curve = calibration(fixed, "agilent-1290", "--config", str(config))
    assert (f"{curve['slope']:.4f}", f"{curve['intercept']:.4f}", f"{curve['r2']:.5f}") == (
        "4.0552", "7.6312", "0.99996")
    assert curve["flags"] == ["level_corrected"] and curve["configuration"] == "default"
    assert (curve["points"][0]["nominal_level"], curve["points"][0]["level"]) == (12, 12.5)
    open_db(fixed.data)
    events = [json.loads(e.details) for e in
              AuditEvent.select().where(AuditEvent.event == "calibration_choices")]
    assert events and events[-1]["corrected"] == {"12_Report.csv": [12.0, 12.5]}
    assert fixed.cli("audit", "verify").returncode == 0


def test_samples_first_then_standards_then_a_reexport(tmp_path: Path, open_db) -> None:
    config = write_config(tmp_path)
    with open(config, "a", encoding="utf-8") as fh:
        fh.write("[methods.default]\npurity_min_pct = 98.0\nvolume = 2.0\n")
    w = WorkerProcess(tmp_path, "--config", str(config))
    w.start()
    try:
        run = w.inbox / "run1"
        staging = tmp_path / "staging"
        for n in (10, *range(1, 10)):  # Inj_10 lands first: order must still be natural
            injection(staging, "P-0142", n, area=168.0 + n / 10)
        shutil.copytree(staging, run)
        w.wait_final(10)
        open_db(w.data)
        # No standard yet: purity and acceptance, but no curve, identity or quantity.
        assert one("purity", "P-0142", "run1").value is not None
        assert one("acceptance", "P-0142", "run1").text == "pass"
        assert not current("run1", kind="identity") and not current("run1", kind="concentration")
        late = w.cli("calibration", "run1", "--config", str(config))
        assert late.returncode == 1 and "no calibration" in late.stdout

        rows = json.loads(w.cli("results", "--json", "--sample", "P-0142",
                                "--config", str(config)).stdout)
        assert [r["injection"] for r in rows if r["kind"] == "purity_injection"] == list(
            range(1, 11))
        trace = json.loads(one("purity", "P-0142", "run1").trace)
        assert list(trace[0]["inputs"]) == [f"Inj_{n}" for n in range(1, 11)]

        # The standards arrive: the curve appears and the samples are recomputed.
        for level in (10, 20, 50, 100, 200):
            standard(staging / "std", f"Std_{level}", area=4.0 * level + 8.0)
        for path in sorted((staging / "std").iterdir()):
            shutil.copy(path, run / path.name)
        w.wait_final(15)
        curve = calibration(w, "run1", "--config", str(config))
        assert (round(curve["slope"], 9), round(curve["intercept"], 9), curve["r2"]) == (
            4.0, 8.0, 1.0)
        assert one("identity", "P-0142", "run1").text == "conforms"
        conc = one("concentration", "P-0142", "run1")
        mean_area = 168.0 + 5.5 / 10
        assert abs(conc.value - (mean_area - 8.0) / 4.0) < 1e-9 and conc.unit == "µg/mL"
        amount = one("amount", "P-0142", "run1")
        assert abs(amount.value - conc.value * 2.0) < 1e-9 and amount.unit == "µg"
        assert json.loads(conc.inputs)["areas"] == [168.0 + n / 10 for n in range(1, 11)]
        assert json.loads(conc.trace) and conc.calc_version.startswith("quantity/")

        # A re-export of one standard (same path, new area): superseded, never duplicated.
        first = {r.kind: r.id for r in current("run1") if r.sample is None}
        standard(run, "Std_200", area=4.0 * 200 + 8.0 + 40.0)
        w.wait_final(16)
        wait_for(lambda: set(first.values()).isdisjoint(r.id for r in current("run1")),
                 what="the curve superseded")
        curve = calibration(w, "run1", "--config", str(config))
        assert curve["slope"] > 4.0 and [p["area"] for p in curve["points"]] == [
            48.0, 88.0, 208.0, 408.0, 848.0]  # the old revision's point is gone
        kinds = [r.kind for r in current("run1") if r.sample is None]
        assert sorted(kinds) == ["calibration_intercept", "calibration_r2", "calibration_slope"]
        for kind in ("identity", "concentration", "amount", "acceptance", "purity"):
            one(kind, "P-0142", "run1")
        assert one("concentration", "P-0142", "run1").id != conc.id
        old = Result.get_by_id(conc.id)
        assert old.superseded and abs(old.value - conc.value) < 1e-12
        assert w.cli("audit", "verify").returncode == 0
    finally:
        w.stop()


def test_flags_exclusions_and_analyte_curves(tmp_path: Path, open_db) -> None:
    exports = tmp_path / "exports"
    # Job A: analyte BPC; level 100 is a bad standard, excluded by the BPC configuration.
    for level, area in ((10, 48.0), (20, 88.0), (50, 208.0), (100, 900.0)):
        standard(exports / "jobA", f"BPC_Std_{level}", area=area)
    injection(exports / "jobA", "PB-0053", 1, area=128.0, rt=7.700, analyte="BPC")
    # Job B: two levels only, far apart RTs; a sample off in RT and out of range.
    standard(exports / "jobB", "Std_10", area=50.0, rt=7.6)
    standard(exports / "jobB", "Std_20", area=90.0, rt=7.6)
    injection(exports / "jobB", "Q-1", 1, area=500.0, rt=8.3)
    # Job C: scattered areas over three levels: low r².
    for level, area in ((10, 60.0), (20, 40.0), (50, 90.0)):
        standard(exports / "jobC", f"Std_{level}", area=area)
    config = tmp_path / "methods.toml"
    config.write_text("[methods.BPC]\nexclude_levels = [100]\nlevel_corrections = {\"7\" = 7.5}\n"
                      "reason = \"CoA 4711\"\n"
                      "dilution_factor = 10\nconcentration_unit = \"mg/L\"\n"
                      "[methods.default]\nrt_tolerance_min = 0.5\n", encoding="utf-8")
    w = WorkerProcess(tmp_path)
    out = w.cli("ingest", str(exports / "jobA"), str(exports / "jobB"), str(exports / "jobC"),
                "--config", str(config))
    assert out.returncode == 0, out.stdout + out.stderr

    a = calibration(w, "jobA", "--config", str(config))
    assert a["analyte"] == "BPC" and a["configuration"] == "BPC" and a["unit"] == "mg/L"
    assert a["flags"] == ["point_excluded", "config_unmatched"]
    assert (round(a["slope"], 9), round(a["intercept"], 9), a["r2"]) == (4.0, 8.0, 1.0)
    excluded = [p for p in a["points"] if p["excluded"]]
    assert [p["nominal_level"] for p in excluded] == [100]
    assert excluded[0]["back_calculated"] == (900.0 - 8.0) / 4.0  # still back-calculated
    b = calibration(w, "jobB", "--config", str(config))
    assert b["flags"] == ["few_levels"] and b["slope"] == 4.0
    c = calibration(w, "jobC", "--config", str(config))
    assert "low_r2" in c["flags"] and c["r2"] < 0.99

    open_db(w.data)
    conc = one("concentration", "PB-0053", "jobA")
    assert conc.analyte == "BPC" and conc.unit == "mg/L"
    assert abs(conc.value - (128.0 - 8.0) / 4.0 * 10) < 1e-9  # dilution factor 10
    assert one("identity", "PB-0053", "jobA").text == "conforms"
    q = one("concentration", "Q-1", "jobB")
    assert "outside_calibrated_range" in json.loads(q.flags)
    identity = one("identity", "Q-1", "jobB")
    assert identity.text == "does not conform" and identity.value is None
    assert abs(json.loads(identity.inputs)["delta_min"] - 0.7) < 1e-9
    assert not current("jobA", kind="acceptance")  # no purity criterion configured
    events = [json.loads(e.details) for e in
              AuditEvent.select().where(AuditEvent.event == "calibration_choices")]
    # Every new BPC curve that used a choice (here: each as the standards land) is audited.
    assert {e["analyte"] for e in events} == {"BPC"} and len(events) == 4
    assert list(events[-1]["excluded"]) == ["BPC_Std_100_PeakData.csv"]
    samples = {s.sample_id: s.kind for s in Sample.select()}
    assert samples["BPC_Std_10"] == "standard" and samples["PB-0053"] == "sample"


def test_export_includes_the_job_calibration_rows(tmp_path: Path, corpus: Path) -> None:
    """The curve has no sample; the export must still carry it (a spreadsheet user needs it)."""
    data = tmp_path / "data"
    reports = [str(p) for p in sorted((corpus / "agilent-1290").glob("*_Report.csv"))]
    done = subprocess.run([sys.executable, "-m", "worker", "ingest", "--data-dir", str(data),
                           *reports], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    exported = subprocess.run([sys.executable, "-m", "worker", "export", "--format", "json",
                               "--data-dir", str(data)], capture_output=True, text=True,
                              timeout=120)
    assert exported.returncode == 0, exported.stderr
    rows = json.loads(exported.stdout)
    slope = [r for r in rows if r["kind"] == "calibration_slope"]
    assert len(slope) == 1 and slope[0]["sample"] is None
    assert round(slope[0]["value"], 4) == 4.0511


def test_quantity_takes_the_dilution_the_file_states(tmp_path: Path, open_db) -> None:
    """A sample's own files state its dilution; that beats the configured default, and the
    trace says which was used."""
    job = tmp_path / "exports" / "jobD"
    for level, area in ((10, 48.0), (20, 88.0), (50, 208.0)):
        standard(job, f"Std_{level}", area=area)  # area = 4 × level + 8
    for n in (1, 2):
        text = peakdata(f"S-9_Inj_{n}", [(5.62, 2.0), (7.62, 128.0)])
        (job / f"S-9_Inj_{n}_PeakData.csv").write_text(text + "Dilution factor:,5\n",
                                                        encoding="utf-8")
    injection(job, "S-10", 1, area=128.0)
    w = WorkerProcess(tmp_path)
    out = w.cli("ingest", str(job))
    assert out.returncode == 0, out.stdout + out.stderr
    open_db(w.data)
    stated = one("concentration", "S-9", "jobD")
    assert abs(stated.value - (128.0 - 8.0) / 4.0 * 5) < 1e-9
    assert json.loads(stated.inputs)["dilution_source"] == "file"
    default = one("concentration", "S-10", "jobD")
    assert abs(default.value - (128.0 - 8.0) / 4.0) < 1e-9
    assert json.loads(default.inputs)["dilution_source"] == "configuration"
