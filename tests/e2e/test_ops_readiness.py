"""/readyz names what is wrong — database not writable, inbox gone, observer dead, disk,
backlog — and turns back to 200 once it is fixed. Real worker subprocesses and a real observer."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from support.workers import WorkerProcess, wait_for, write_config

from worker.consume.queue import open_queue
from worker.intake.watcher import Watcher
from worker.record import db
from worker.record.models import QUEUED, SourceFile, utcnow
from worker.runtime import health
from worker.runtime.health import Probe
from worker.settings import Settings


def failed(worker: WorkerProcess) -> tuple[int, dict[str, str]]:
    code, body = worker.get("/readyz")
    return code, body["failed"]


def test_readiness_names_an_unwritable_database_then_recovers(worker: WorkerProcess) -> None:
    worker.start()
    wait_for(lambda: failed(worker)[0] == 200, timeout=20, what="ready")
    # Another process holds the write lock (a stuck writer, a copy tool): SELECT 1 still
    # answers, only a write shows the database cannot take rows.
    holder = sqlite3.connect(worker.data / "accu-ingest.db", timeout=0, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        code, why = failed(worker)
        assert code == 503
        assert "not writable" in why["database"] and "locked" in why["database"]
        assert set(why) <= {"database", "backlog"}  # nothing else is blamed
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert failed(worker) == (200, {})


def test_inbox_gone_fails_inbox_and_observer_then_recovers(tmp_path: Path,
                                                           corpus: Path) -> None:
    # A rescan an hour away: after recovery only a restarted observer can notice the new file.
    w = WorkerProcess(tmp_path, "--config", str(write_config(tmp_path, rescan_seconds=3600.0)))
    try:
        w.start()
        wait_for(lambda: failed(w)[0] == 200, timeout=20, what="ready")
        shutil.rmtree(w.inbox)
        _, why = wait_for(lambda: (r := failed(w))[0] == 503 and "observer" in r[1] and r,
                             timeout=20, what="503 naming the observer")
        assert "missing or unreadable" in why["inbox"]
        assert why["observer"] == "file observer is not running"

        w.inbox.mkdir()
        wait_for(lambda: failed(w) == (200, {}), timeout=20, what="ready again")
        shutil.copy(corpus / "agilent-1290" / "50_Report.csv", w.inbox / "50_Report.csv")
        status = w.wait_final(1, timeout=30)
        assert status["files"]["ingested"] == 1
    finally:
        if w.proc is not None:
            w.stop()


def test_dead_observer_is_reported_and_restarted(tmp_path: Path) -> None:
    """The watcher's own check: an observer whose emitter ended is dead, and is restarted."""
    settings = Settings(inbox=tmp_path / "inbox", data_dir=tmp_path / "data")
    settings.inbox.mkdir()
    db.open_database(settings)
    watcher = Watcher(settings, open_queue(settings))
    watcher._start_observer()  # the observer alone, without the gate loop that would heal it
    probe = Probe(settings=settings, observer_alive=watcher.observer_alive)
    try:
        assert health.checks(probe)["observer"] is None
        for emitter in list(watcher._observer.emitters):  # type: ignore[union-attr]
            emitter.stop()
            emitter.join(timeout=5)
        assert health.checks(probe)["observer"] == "file observer is not running"
        watcher._check_observer()
        assert health.checks(probe)["observer"] is None
        assert watcher.stats.observer_restarts == 1
    finally:
        watcher.stop()


def test_disk_and_backlog_thresholds_fail_readiness(tmp_path: Path) -> None:
    settings = Settings(inbox=tmp_path / "inbox", data_dir=tmp_path / "data",
                        min_free_mb=1e12, backlog_max_minutes=5)
    database = db.open_database(settings)
    probe = Probe(settings=settings)
    try:
        why = health.checks(probe)
        assert "min_free_mb" in why["disk"] and why["backlog"] is None
        SourceFile.create(sha256="a" * 64, path="late.csv", name="late.csv", origin="here",
                          size=1, mtime_ns=1, state=QUEUED,
                          first_seen=utcnow() - timedelta(minutes=6))
        assert "backlog_max_minutes = 5" in health.checks(probe)["backlog"]
        SourceFile.update(first_seen=utcnow()).execute()
        assert health.checks(probe)["backlog"] is None
    finally:
        database.close()


def test_endpoint_is_read_only(worker: WorkerProcess) -> None:
    import urllib.error
    import urllib.request
    worker.start()
    for path in ("/livez", "/readyz", "/status", "/metrics", "/", "/files", "/api/files"):
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PURGE"):
            request = urllib.request.Request(f"http://127.0.0.1:{worker.port}{path}",
                                             data=b"x", method=method)
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(request, timeout=5)
            assert err.value.code == 405, (method, path)  # only GET and HEAD are served
            assert err.value.headers["Allow"] == "GET, HEAD"


def test_probing_readiness_for_days_does_not_use_up_file_descriptors(
        worker: WorkerProcess) -> None:
    """Each probe is served by a thread of its own and takes a write transaction: whatever the
    probe opens must be closed again, or a worker probed every 10 s runs out of descriptors."""
    worker.start()
    wait_for(lambda: failed(worker)[0] == 200, timeout=20, what="ready")
    assert worker.proc is not None
    fds = Path(f"/proc/{worker.proc.pid}/fd")
    if not fds.is_dir():
        pytest.skip("no /proc on this platform to count descriptors")
    before = len(list(fds.iterdir()))
    for _ in range(200):
        assert failed(worker)[0] == 200
    assert len(list(fds.iterdir())) - before < 20
