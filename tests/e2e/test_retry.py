"""``accu-ingest retry`` re-processes quarantined files, audited.

The cause is fixed outside the file (here: a ``max_file_mb`` that was set too low), then the
retry reopens the ledger row from the stored bytes, ingests it, and quarantine/ is tidied; a file
that is still bad is rejected again with its reason rewritten.
"""

from __future__ import annotations

import json

from support.reports import report_bytes
from support.workers import WorkerProcess, files_under, wait_for, write_config

from worker.record.models import AuditEvent, Injection, SourceFile


def test_retry_after_fixing_the_cause_ingests_and_tidies_quarantine(tmp_path, open_db) -> None:
    tight = write_config(tmp_path, max_file_mb=0.0002)  # 210 bytes: every report is "too big"
    worker = WorkerProcess(tmp_path, "--config", str(tight))
    worker.start()
    good, bad = report_bytes(1, 5), report_bytes(2, 5).replace(b"Sum,", b"Sum,9")
    (worker.inbox / "S1_Report.csv").write_bytes(good)
    (worker.inbox / "S2_Report.csv").write_bytes(bad)
    worker.wait_final(2)
    quarantine = worker.data / "quarantine"  # once unchanged for dispose_settle_seconds
    wait_for(lambda: len(files_under(quarantine)) == 4, what="2 files + 2 reasons quarantined")
    worker.stop()
    open_db(worker.data)
    assert {r.state for r in SourceFile.select()} == {"rejected"}

    # max_file_mb back to its default: retry them all, no worker running.
    done = worker.cli("retry", "--all-rejected", "--reason", "max_file_mb back to default")
    assert done.returncode == 1, done.stdout + done.stderr  # one is still bad
    s1 = SourceFile.get(SourceFile.name == "S1_Report.csv")
    s2 = SourceFile.get(SourceFile.name == "S2_Report.csv")
    assert f"ingested {s1.id} S1_Report.csv" in done.stdout
    assert s1.state == "ingested" and Injection.select().where(
        Injection.source_file == s1).count() == 1
    assert s2.state == "rejected" and "disagrees" in s2.error
    assert (worker.data / "processed" / "S1_Report.csv").read_bytes() == good
    assert sorted(p.name for p in files_under(quarantine)) == [
        "S2_Report.csv", "S2_Report.csv.reason.txt"]
    assert "disagrees" in (quarantine / "S2_Report.csv.reason.txt").read_text()
    retries = [json.loads(e.details) for e in AuditEvent.select().where(
        AuditEvent.event == "retry").order_by(AuditEvent.seq)]
    assert [r["path"] for r in retries] == ["S1_Report.csv", "S2_Report.csv"]
    assert "max_file_mb" in retries[0]["previous_error"]

    # Retrying what is no longer rejected does nothing; the trail still verifies.
    again = worker.cli("retry", str(s1.id), "--reason", "again")
    assert again.returncode == 1 and "not rejected (it is ingested)" in again.stdout
    assert worker.cli("audit", "verify").returncode == 0


def test_retry_while_the_worker_runs_processes_the_file_once(worker: WorkerProcess,
                                                             open_db) -> None:
    worker.start()
    data = report_bytes(3, 5)
    cut = data[: data.index(b"Sum,")]  # the exporter was interrupted: no Sum row
    (worker.inbox / "S3_Report.csv").write_bytes(cut)
    worker.wait_final(1)
    open_db(worker.data)
    row = SourceFile.get()
    assert row.state == "rejected"
    # A retry of an unchanged file is rejected the same way, and only once.
    done = worker.cli("retry", str(row.id), "--reason", "parser fixed")
    assert done.returncode == 1 and "without its Sum row" in done.stdout
    wait_for(lambda: worker.status()["backlog"] == 0, what="empty backlog")
    assert SourceFile.get_by_id(row.id).state == "rejected"
    events = [e.event for e in AuditEvent.select().where(AuditEvent.source_file_id == row.id)]
    assert events.count("rejected") == 2 and events.count("retry") == 1
    assert worker.alive() and worker.cli("audit", "verify").returncode == 0
