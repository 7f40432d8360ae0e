"""Complete files the watcher cannot take are reported, and hold back nothing else.

An unreadable file (no read permission) used to wait in the inbox silently for ever with
/readyz 200; now it is logged once, counted and named in /status and /metrics, fails readiness
once it has been unreadable for two rescans, and is taken as soon as it can be read. A file
whose ledger row cannot be written keeps only itself out: the batch it came in is registered
file by file, and trying it again re-uses the bytes stored the first time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from support.corpus import IN_CI
from support.reports import report_bytes
from support.workers import (
    UnprivilegedWorker,
    WorkerProcess,
    can_drop_override,
    files_under,
    wait_for,
    write_config,
)

from worker.record.models import SourceFile, database


def _ingested(worker: WorkerProcess) -> int:
    return int(worker.status()["files"]["ingested"])


def test_an_unreadable_file_is_reported_and_taken_once_readable(tmp_path: Path) -> None:
    if not can_drop_override(tmp_path):
        if IN_CI:
            pytest.fail("setpriv cannot make a file unreadable here; CI must allow it")
        pytest.skip("no way to make a file unreadable to this user (setpriv without caps)")
    worker = UnprivilegedWorker(tmp_path, "--config", str(write_config(tmp_path)))
    worker.start()
    try:
        for i in range(5):
            (worker.inbox / f"S{i}_Report.csv").write_bytes(report_bytes(i))
        # Unreadable before it enters the inbox, as a share with other rights delivers it.
        secret = tmp_path / "Secret_Report.csv"
        secret.write_bytes(report_bytes(100))
        secret.chmod(0)
        (worker.inbox / "sub").mkdir()
        os.rename(secret, worker.inbox / "sub" / "Secret_Report.csv")

        wait_for(lambda: _ingested(worker) == 5, timeout=60, what="the readable files")
        intake = wait_for(lambda: (i := worker.status()["intake"])["unreadable"] and i,
                          timeout=30, what="the unreadable file in /status")
        assert intake["unreadable"] == 1
        assert intake["unreadable_paths"] == ["sub/Secret_Report.csv"]
        assert worker.metric("accu_ingest_intake_unreadable") == 1.0

        # Readiness fails once it has been unreadable for two rescans (rescan_seconds = 2).
        _, body = wait_for(lambda: (r := worker.get("/readyz"))[0] == 503 and r,
                              timeout=30, what="/readyz 503")
        assert "sub/Secret_Report.csv" in body["failed"]["intake"]
        assert "Permission denied" in body["failed"]["intake"]

        # Other files are still taken meanwhile.
        (worker.inbox / "S5_Report.csv").write_bytes(report_bytes(5))
        wait_for(lambda: _ingested(worker) == 6, timeout=60, what="a file dropped later")

        # Said once, not on every pass.
        log = worker.log.read_text(errors="replace")
        assert log.count("cannot read sub/Secret_Report.csv") == 1, log[-3000:]

        (worker.inbox / "sub" / "Secret_Report.csv").chmod(0o644)
        wait_for(lambda: _ingested(worker) == 7, timeout=60, what="the file once readable")
        wait_for(lambda: worker.get("/readyz")[0] == 200, timeout=30, what="/readyz 200")
        intake = worker.status()["intake"]
        assert intake["unreadable"] == 0 and intake["problem"] is None
        assert worker.metric("accu_ingest_intake_unreadable") == 0.0
        wait_for(lambda: not files_under(worker.inbox), timeout=30, what="the inbox emptied")
        assert (worker.data / "processed" / "sub" / "Secret_Report.csv").read_bytes() == \
            report_bytes(100)
    finally:
        assert worker.stop() == 0


def test_a_file_whose_row_cannot_be_written_keeps_only_itself_out(worker: WorkerProcess,
                                                                   open_db) -> None:
    # A database that refuses one file's row, and only that one (a real SQLite trigger).
    open_db(worker.data)
    database.execute_sql(
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON source_file "
        "WHEN NEW.name = 'Poison_Report.csv' "
        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
    for i in range(10):
        (worker.inbox / f"S{i}_Report.csv").write_bytes(report_bytes(i))
    (worker.inbox / "Poison_Report.csv").write_bytes(report_bytes(100))
    worker.start()  # the start-up scan takes all eleven in one batch

    worker.wait_final(10, timeout=60)
    intake = wait_for(lambda: (i := worker.status()["intake"])["unregistered"] and i,
                      timeout=30, what="the refused file in /status")
    assert [f["path"] for f in intake["unregistered_files"]] == ["Poison_Report.csv"]
    assert "refused by the test" in intake["unregistered_files"][0]["reason"]
    assert worker.metric("accu_ingest_intake_unregistered") == 1.0
    assert (worker.inbox / "Poison_Report.csv").is_file()

    # Tried again at every rescan (rescan_seconds = 2), from the bytes it stored the first
    # time: the raw store does not grow with each attempt.
    packs = files_under(worker.data / "raw")
    time.sleep(6)
    assert files_under(worker.data / "raw") == packs
    log = worker.log.read_text(errors="replace")
    assert log.count("cannot register Poison_Report.csv") == 1, log[-3000:]

    # The cause goes away: the file is taken, its bytes from where they were stored.
    database.execute_sql("DROP TRIGGER refuse_poison")
    worker.wait_final(11, timeout=60)
    assert files_under(worker.data / "raw") == packs
    assert SourceFile.get(SourceFile.name == "Poison_Report.csv").state == "ingested"
    wait_for(lambda: worker.status()["intake"]["unregistered"] == 0, timeout=10,
             what="nothing held back")
    assert worker.cli("audit", "verify").returncode == 0
    assert worker.stop() == 0
