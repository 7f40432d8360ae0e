"""The LIMS export of the corpus job: one row per sample, matching the results, with hashes."""

from __future__ import annotations

import csv
import hashlib
import io
import subprocess
import sys
from pathlib import Path

from support.pipeline import Pipeline

from worker.deliver import lims
from worker.results import view

STANDARDS = ("12_Report.csv", "25_Report.csv", "50_Report.csv", "100_Report.csv",
             "250_Report.csv")


def ingest_corpus_job(pipeline: Pipeline, corpus: Path) -> dict[str, str]:
    """The five Agilent 1290 standards as one export folder; their SHA-256 by file name."""
    names = [f"seq/{n}" for n in STANDARDS]
    hashes = {}
    for name, n in zip(names, STANDARDS, strict=True):
        data = (corpus / "agilent-1290" / n).read_bytes()
        pipeline.drop(name, data)
        hashes[name] = hashlib.sha256(data).hexdigest()
    assert set(pipeline.ingest(pipeline.take(*names)).values()) == {"ingested"}
    return hashes


def test_one_row_per_sample_matching_the_results(pipeline: Pipeline, corpus: Path) -> None:
    hashes = ingest_corpus_job(pipeline, corpus)
    rows = lims.rows()
    assert [r["sample_id"] for r in rows] == ["Std_12", "Std_25", "Std_50", "Std_100",
                                              "Std_250"]
    results = view.result_rows()
    for row in rows:
        mine = {r["kind"]: r for r in results if r["sample"] == row["sample_id"]}
        assert row["job"] == "seq" and row["sample_type"] == "standard"
        assert row["purity_pct"] == mine["purity"]["value"]
        assert row["purity_rsd_pct"] == mine["purity_rsd"]["value"]  # one injection: none
        assert row["purity_n"] == 1
        assert row["identity"] == mine["identity"]["text"] == "conforms"
        assert row["calc_version"] == ";".join(sorted({r["calc_version"]
                                                       for r in mine.values()}))
        assert row["flags"] == ["rsd_undefined"]
        [path] = row["source_files"]
        assert row["source_sha256"] == [hashes[path]]
    assert rows[0]["purity_pct"] == 72.7608  # the file prints it


def test_lims_csv_has_the_documented_columns_and_stays_formula_safe(
        pipeline: Pipeline, corpus: Path) -> None:
    hashes = ingest_corpus_job(pipeline, corpus)
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    for column in lims.COLUMNS:  # the contract is documented
        assert f"`{column}`" in readme, column
    s = pipeline.settings
    done = subprocess.run([sys.executable, "-m", "worker", "export", "--format", "lims-csv",
                           "--data-dir", str(s.data_dir), "--inbox", str(s.inbox)],
                          capture_output=True, text=True, check=True)
    table = list(csv.DictReader(io.StringIO(done.stdout)))
    assert list(table[0]) == lims.COLUMNS
    assert len(table) == 5
    assert {r["source_sha256"] for r in table} == set(hashes.values())
    assert table[0]["purity_pct"] == "72.7608"
    # a negative ΔRT stays a number; text that a spreadsheet would run is quoted
    delta = next(r["identity_delta_rt_min"] for r in table if r["sample_id"] == "Std_100")
    assert float(delta) < 0 and not delta.startswith("'")
    out = io.StringIO()
    from worker.results.export import write_csv
    write_csv([{**lims.rows()[0], "sample_id": "=HYPERLINK(\"x\")"}], lims.COLUMNS, out)
    assert "'=HYPERLINK" in out.getvalue()
    json_done = subprocess.run([sys.executable, "-m", "worker", "export", "--format",
                                "lims-json", "--data-dir", str(s.data_dir), "--inbox",
                                str(s.inbox)], capture_output=True, text=True, check=True)
    assert '"source_sha256": [' in json_done.stdout
