"""The commands scripts and monitoring rely on: exit codes, JSON shapes, graceful stop."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from support.workers import WorkerProcess, files_under


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker", *args, "--data-dir",
                           str(root / "data")], capture_output=True, text=True, timeout=120,
                          cwd=root)


def test_ingest_exit_codes_and_results_json(tmp_path: Path, corpus: Path) -> None:
    good = corpus / "agilent-1290" / "100_Report.csv"
    ok = run(tmp_path, "ingest", str(good))
    assert ok.returncode == 0, ok.stderr
    assert "1 ingested, 0 rejected" in ok.stdout
    assert good.exists()  # one-shot leaves the source where it was

    bad = tmp_path / "broken_Report.csv"
    bad.write_bytes(good.read_bytes().replace(b"Sum,425.2596,,,,", b""))
    failed = run(tmp_path, "ingest", str(bad))
    assert failed.returncode == 1
    assert "REJECTED broken_Report.csv" in failed.stdout and "Sum row" in failed.stdout
    assert (tmp_path / "data" / "quarantine" / "broken_Report.csv.reason.txt").exists()

    results = json.loads(run(tmp_path, "results", "--json").stdout)
    purity = [r for r in results if r["kind"] == "purity"]
    assert len(purity) == 1
    (r,) = purity
    assert (r["sample"], r["value"], r["unit"], r["source_files"]) == (
        "Std_100", 96.7426, "%", ["100_Report.csv"])
    only = json.loads(run(tmp_path, "results", "--json", "--sample", "nope").stdout)
    assert only == []

    status = json.loads(run(tmp_path, "status", "--json").stdout)
    assert status["files"]["ingested"] == 1 and status["files"]["rejected"] == 1
    assert status["backlog"] == 0 and status["last_ingest"].endswith("Z")

    again = run(tmp_path, "ingest", str(good))  # the same bytes: nothing new
    assert again.returncode == 0
    assert len(json.loads(run(tmp_path, "results", "--json").stdout)) == len(results)


def test_status_endpoint_and_graceful_stop(worker: WorkerProcess, corpus: Path) -> None:
    worker.start()
    code, body = worker.get("/readyz")
    assert code == 200 and body["failed"] == {}
    assert worker.get("/nope")[0] == 404
    shutil.copy(corpus / "agilent-1290" / "25_Report.csv", worker.inbox)
    status = worker.wait_final(1)
    assert status["version"] and status["uptime_s"] > 0 and status["last_ingest"]
    assert worker.stop(signal.SIGINT) == 0
    assert "accu-ingest stopped" in worker.log.read_text()
    assert files_under(worker.inbox) == []


def test_one_shot_d_folder_waits_for_its_report_and_counts_truly(tmp_path: Path,
                                                                 corpus: Path) -> None:
    """The CSV set files of a .D folder wait for Report.TXT; the summary counts them only once
    they are final, and the same file given twice is one ingested file twice."""
    folder = corpus / "agilent-chemstation" / "001F0101.D"
    done = run(tmp_path, "ingest", str(folder), str(folder / "Report.TXT"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 ingested, 0 rejected" in done.stdout
    status = json.loads(run(tmp_path, "status", "--json").stdout)
    assert status["backlog"] == 0  # nothing left waiting behind the summary
    assert status["files"]["ingested"] == 4 and status["files"]["rejected"] == 0
