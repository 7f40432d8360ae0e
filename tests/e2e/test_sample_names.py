"""Sample identity from names, as the lab writes them."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from support.reports import random_peaks, report
from support.workers import WorkerProcess

from worker.consume.sample_names import BLANK, OTHER, SAMPLE, STANDARD, Identity, identify
from worker.record.models import Result, Sample


@pytest.mark.parametrize(("name", "expected"), [
    ("P-0142_Inj_1_PeakData.csv", Identity("P-0142", SAMPLE, injection=1)),
    ("PB-0053_Inj_1_BPC_PeakData.csv", Identity("PB-0053", SAMPLE, analyte="BPC", injection=1)),
    ("AOD9604_Std_100.dx_DAD1A.CSV", Identity("AOD9604_Std_100", STANDARD, "AOD9604", 100.0)),
    ("250_Report.csv", Identity("Std_250", STANDARD, level=250.0)),
    ("12_Report.csv", Identity("Std_12", STANDARD, level=12.0)),
    ("Blank_1.dx_DAD1A.CSV", Identity("Blank_1", BLANK)),
    ("Requilibration.dx_DAD1A.CSV", Identity("Requilibration", OTHER)),
    ("P-0111_Inj_10", Identity("P-0111", SAMPLE, injection=10)),
    ("Lot 7 final.csv", Identity("Lot 7 final", SAMPLE)),
])
def test_identity_from_names(name: str, expected: Identity) -> None:
    assert identify(name) == expected


@pytest.mark.parametrize(("printed", "expected"), [
    # Kept verbatim: no folder split, no suffix or layout stripping, no bare number as a level.
    ("LOT-A/01", Identity("LOT-A/01", SAMPLE)),
    ("LOT-B/01", Identity("LOT-B/01", SAMPLE)),
    ("Batch 7\\QC", Identity("Batch 7\\QC", SAMPLE)),
    ("0", Identity("0", SAMPLE)),
    ("250", Identity("250", SAMPLE)),
    ("Lot 12_Report", Identity("Lot 12_Report", SAMPLE)),
    ("Assay.csv", Identity("Assay.csv", SAMPLE)),
    ("Std/5", Identity("Std/5", SAMPLE)),
    # The words the lab types into sample names still classify them, text unchanged.
    ("Std_100", Identity("Std_100", STANDARD, level=100.0)),
    ("AOD9604_Std_12", Identity("AOD9604_Std_12", STANDARD, "AOD9604", 12.0)),
    ("Blank_1", Identity("Blank_1", BLANK)),
    ("Requilibration", Identity("Requilibration", OTHER)),
    ("S-9_Inj_2", Identity("S-9", SAMPLE, injection=2)),
    ("PB-0053_Inj_1_BPC", Identity("PB-0053", SAMPLE, analyte="BPC", injection=1)),
    ("LOT-A/01_Inj_3", Identity("LOT-A/01", SAMPLE, injection=3)),
])
def test_identity_from_printed_names(printed: str, expected: Identity) -> None:
    assert identify(printed, printed=True) == expected


def test_printed_names_reach_the_database_verbatim(tmp_path: Path, open_db) -> None:
    """Two lots printed ``LOT-A/01`` and ``LOT-B/01`` stay two samples (once merged into one
    level-1 standard ``Std_01`` that fed the calibration); ``Batch 7\\QC`` and ``0`` too."""
    job = tmp_path / "exports" / "lots"
    job.mkdir(parents=True)
    printed = {"lot_a": "LOT-A/01", "lot_b": "LOT-B/01", "qc": "Batch 7\\QC", "zero": "0"}
    rng = random.Random(7)
    for stem_, name in printed.items():
        (job / f"{stem_}_Report.csv").write_text(report(random_peaks(rng), sample_name=name),
                                                 encoding="utf-8")
    w = WorkerProcess(tmp_path)
    out = w.cli("ingest", str(job))
    assert out.returncode == 0, out.stdout + out.stderr
    open_db(w.data)
    samples = {(s.sample_id, s.kind, s.level) for s in Sample.select()}
    assert samples == {(name, SAMPLE, None) for name in printed.values()}
    purity = {r.sample.sample_id for r in Result.select().where(Result.kind == "purity")}
    assert purity == set(printed.values())
    assert not Result.select().where(Result.kind.startswith("calibration")).exists()
