"""End to end: the real corpus dropped into a running worker (real observer, consumer,
SQLite), a slowly written file, a file cut in the middle of its table, and a restart."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from support.workers import WorkerProcess, files_under, wait_for

from worker.record.models import Chromatogram, Injection, Peak, Result, Sample, SourceFile

REPORT_PEAKS = {"12": 5, "25": 4, "50": 7, "100": 5, "250": 7}


def test_corpus_run_becomes_rows_and_inbox_empties(worker: WorkerProcess, corpus: Path,
                                                   open_db) -> None:
    worker.start()
    shutil.copytree(corpus / "agilent-1290", worker.inbox / "agilent-1290")
    total = len(files_under(corpus / "agilent-1290"))  # 5 reports, 8 traces, the lab's xlsx
    status = worker.wait_final(total, timeout=90)
    assert status["files"]["ingested"] == 13
    assert status["files"]["rejected"] == 1  # the lab's Excel workbook: no parser claims it
    assert status["last_ingest"] is not None

    open_db(worker.data)
    standards = {s.sample_id: s for s in Sample.select().where(Sample.kind == "standard")
                 if s.sample_id.startswith("Std_")}
    assert sorted(standards) == sorted(f"Std_{lvl}" for lvl in REPORT_PEAKS)
    for level, n in REPORT_PEAKS.items():
        sample = standards[f"Std_{level}"]
        assert sample.level == float(level)
        peaks = Peak.select().join(Injection).where(Injection.sample == sample)
        assert peaks.count() == n
    assert Chromatogram.select().count() == 8
    assert {c.points for c in Chromatogram.select()} >= {30000, 29999, 14400}

    std100 = standards["Std_100"]
    main = max(Peak.select().join(Injection).where(Injection.sample == std100),
               key=lambda p: p.area_pct)
    assert (main.area_pct, main.rt_min, main.area) == (96.7426, 7.624, 411.4072)
    purity = Result.get(Result.sample == std100, Result.kind == "purity",
                        Result.superseded == False)  # noqa: E712
    assert purity.value == 96.7426 and purity.unit == "%"
    assert "7.624" in purity.trace or "7.624" in Result.get(
        Result.sample == std100, Result.kind == "purity_injection").inputs

    verify = worker.cli("audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # The rejected workbook leaves after dispose_settle_seconds (its writer might append).
    wait_for(lambda: files_under(worker.inbox) == [], timeout=60, what="empty inbox")
    assert len(files_under(worker.data / "processed")) == 13
    quarantined = files_under(worker.data / "quarantine")
    assert [p.name for p in quarantined if p.suffix == ".txt"] == [
        "STD_Greycap_Targetmol_147291_T7815L_01122026.xlsx.reason.txt"]

    # Restart: nothing is ingested twice, the chain still verifies.
    before = (SourceFile.select().count(), Peak.select().count(), Result.select().count())
    assert worker.stop() == 0
    worker.start()
    time.sleep(3)
    after = (SourceFile.select().count(), Peak.select().count(), Result.select().count())
    assert after == before
    assert worker.cli("audit", "verify").returncode == 0


def test_slowly_written_file_is_ingested_once_complete(worker: WorkerProcess, corpus: Path,
                                                       open_db) -> None:
    worker.start()
    data = (corpus / "agilent-1290" / "250_Report.csv").read_bytes()
    target = worker.inbox / "250_Report.csv"
    chunks = [data[i:i + len(data) // 8 + 1] for i in range(0, len(data), len(data) // 8 + 1)]
    with open(target, "wb") as fh:
        for chunk in chunks:  # about 3 s in all, the cut falling inside the peak table too
            fh.write(chunk)
            fh.flush()
            time.sleep(0.35)
    status = worker.wait_final(1)
    assert status["files"] == {"queued": 0, "processing": 0, "ingested": 1, "rejected": 0,
                               "context": 0}
    open_db(worker.data)
    assert Peak.select().count() == 7
    assert SourceFile.get().size == len(data)


def test_report_cut_mid_table_is_rejected_with_line_and_reason(worker: WorkerProcess,
                                                               corpus: Path, open_db) -> None:
    worker.start()
    text = (corpus / "agilent-1290" / "50_Report.csv").read_bytes()
    cut = text[: text.index(b"Sum,") - 40]  # inside the peak rows, before the Sum row
    (worker.inbox / "50_Report.csv").write_bytes(cut)
    worker.wait_final(1)
    open_db(worker.data)
    row = SourceFile.get()
    assert row.state == "rejected"
    assert row.error_line is not None and row.error_line > 57
    assert Peak.select().count() == 0 and Sample.select().count() == 0
    reason = worker.data / "quarantine" / "50_Report.csv.reason.txt"
    wait_for(reason.exists, what="quarantine reason file")
    assert f"line {row.error_line}" in reason.read_text()
    assert (worker.data / "quarantine" / "50_Report.csv").read_bytes() == cut
    assert files_under(worker.inbox) == []
    assert worker.status()["files"]["rejected"] == 1
    assert worker.alive()


def test_open_file_is_not_taken_while_its_writer_pauses(worker: WorkerProcess, corpus: Path,
                                                        open_db) -> None:
    """A writer that pauses longer than the stability window but has not closed the file."""
    worker.start()
    data = (corpus / "agilent-1290" / "100_Report.csv").read_bytes()
    half = data.index(b"Sum,") - 30
    with open(worker.inbox / "100_Report.csv", "wb") as fh:
        fh.write(data[:half])
        fh.flush()
        time.sleep(3)  # six stability windows with the file still open
        assert worker.status()["files"]["rejected"] == 0
        fh.write(data[half:])
    status = worker.wait_final(1)
    assert status["files"]["ingested"] == 1
