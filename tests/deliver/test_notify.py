"""The notifier in the test process, against a real HTTP receiver: a broken audit trail and a
full disk are told once, and their resolution once; a bad target URL stops start-up."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.pipeline import Pipeline
from support.receivers import HttpReceiver
from support.workers import wait_for

from worker.deliver.notify import Notifier
from worker.deliver.state import State
from worker.record import audit
from worker.runtime.health import Probe
from worker.runtime.scrub import Scrub
from worker.settings import NotifyTarget


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()
    yield receiver
    receiver.close()


def notifier(pipeline: Pipeline, http: HttpReceiver, **settings: object) -> Notifier:
    s = pipeline.settings.model_copy(update={
        "notify": [NotifyTarget(url=f"json://127.0.0.1:{http.port}/n")],
        "notify_group_seconds": 0.0, **settings})
    n = Notifier(Probe(settings=s), State(s.reports_dir / "state.json"), lambda: True)
    n.start()
    return n


def titles(http: HttpReceiver) -> list[str]:
    return [p.body["title"] for p in http.posted]


def test_a_broken_audit_trail_is_told_once_then_resolved(pipeline: Pipeline, corpus: Path,
                                                         http: HttpReceiver) -> None:
    audit.open_chain()
    pipeline.run("12_Report.csv", (corpus / "agilent-1290" / "12_Report.csv").read_bytes())
    audit.checkpoint()  # as the running worker does: an intact, anchored trail
    n = notifier(pipeline, http, audit_verify_minutes=1e-6)
    try:
        n.poll()
        time.sleep(0.5)
        assert titles(http) == []  # intact: nothing to tell
        db = pipeline.settings.data_dir / "accu-ingest.db"
        with sqlite3.connect(db) as con:
            old = con.execute("SELECT details FROM audit_event WHERE seq = 3").fetchone()[0]
            con.execute("UPDATE audit_event SET details = ? WHERE seq = 3", (old + " ",))
        time.sleep(0.01)
        n.poll()
        n.poll()
        wait_for(lambda: any("PROBLEM audit" in t for t in titles(http)), timeout=10,
                 what="audit problem")
        note = next(p.body for p in http.posted if "PROBLEM audit" in p.body["title"])
        assert "broken at event 3" in note["message"]
        assert f"accu-ingest audit verify --data-dir {pipeline.settings.data_dir}" \
            in note["message"]
        with sqlite3.connect(db) as con:
            con.execute("UPDATE audit_event SET details = ? WHERE seq = 3", (old,))
        time.sleep(0.01)
        n.poll()
        wait_for(lambda: any("resolved audit" in t for t in titles(http)), timeout=10,
                 what="audit resolved")
        assert sum("audit" in t for t in titles(http)) == 2
    finally:
        n.stop()


def test_raw_bytes_the_scrub_finds_damaged_are_told(pipeline: Pipeline, corpus: Path,
                                                    http: HttpReceiver) -> None:
    audit.open_chain()
    row = pipeline.run("12_Report.csv", (corpus / "agilent-1290" / "12_Report.csv").read_bytes())
    audit.checkpoint()
    scrub = Scrub(pipeline.settings, lambda: True)
    assert scrub.run_pass().ok
    pack = pipeline.settings.raw_dir / row.raw_pack
    data = bytearray(pack.read_bytes())
    data[row.raw_offset + 120] ^= 0x04
    pack.write_bytes(bytes(data))
    assert not scrub.run_pass().ok
    n = notifier(pipeline, http, audit_verify_minutes=1e-6)
    try:
        n.poll()
        wait_for(lambda: any("PROBLEM audit" in t for t in titles(http)), timeout=10,
                 what="the scrub's finding told")
        note = next(p.body for p in http.posted if "PROBLEM audit" in p.body["title"])
        assert "scrub found 1 raw file(s) missing or not matching" in note["message"]
    finally:
        n.stop()

def test_low_disk_is_told_once(pipeline: Pipeline, http: HttpReceiver) -> None:
    n = notifier(pipeline, http, min_free_mb=1e12)
    try:
        for _ in range(3):
            n.poll()
        wait_for(lambda: titles(http), timeout=10, what="disk problem")
        time.sleep(0.5)
        assert [t for t in titles(http) if "disk" in t] == [
            f"accu-ingest on {pipeline.settings.node}: PROBLEM disk: disk space is low"]
    finally:
        n.stop()


def test_a_url_apprise_does_not_know_stops_start_up(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[notify]]\nurl = "nosuchservice://x"\n', encoding="utf-8")
    (tmp_path / "inbox").mkdir()
    done = subprocess.run([sys.executable, "-m", "worker", "run", "--config", str(cfg),
                           "--inbox", str(tmp_path / "inbox"), "--data-dir",
                           str(tmp_path / "data"), "--port", "0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "notify.0.url" in done.stderr and "apprise does not recognise" in done.stderr
    assert "Traceback" not in done.stderr


def test_rejections_are_told_once_and_again_when_a_retry_rejects_again(
        pipeline: Pipeline, http: HttpReceiver) -> None:
    from worker.consume.retry import retry

    n = notifier(pipeline, http, audit_verify_minutes=0)
    try:
        row = pipeline.run("junk.txt", "not a chromatogram\n")
        assert row.state == "rejected"
        for _ in range(3):
            n.poll()
            time.sleep(0.05)
        wait_for(lambda: titles(http), timeout=10, what="rejection")
        time.sleep(0.3)
        assert titles(http) == [f"accu-ingest on {pipeline.settings.node}: 1 file rejected"], \
            [p.body for p in http.posted]
        assert f"accu-ingest retry {row.id} --data-dir" in http.posted[0].body["message"]
        time.sleep(0.01)
        retry(pipeline.settings, row.id, pipeline.owner, "test")  # still not a chromatogram
        for _ in range(3):
            n.poll()
            time.sleep(0.05)
        wait_for(lambda: len(titles(http)) == 2, timeout=10, what="the retry's rejection")
    finally:
        n.stop()
