"""The audit trail is hash-chained, keyed and anchored: any edit, insertion or deletion is found
and named, also when the forger recomputes every later hash, cuts the trail's end off, or
appends to it — checked by the real ``accu-ingest audit verify`` on a real worker's database."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.corpus import REPO
from support.workers import WorkerProcess, wait_for, write_config

from worker.runtime.canary import report_bytes

FIXTURES = REPO / "tests" / "fixtures" / "audit"


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    root = tmp_path_factory.mktemp("audit")
    done = subprocess.run([sys.executable, "-m", "worker", "ingest", "--data-dir",
                           str(root / "data"), str(corpus / "agilent-1290" / "100_Report.csv"),
                           str(corpus / "agilent-1290" / "25_Report.csv")],
                          capture_output=True, text=True, timeout=120, cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    return root


def verify(root: Path, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker", "audit", "verify", "--data-dir",
                           str(db.parent)], capture_output=True, text=True, timeout=60, cwd=root)


def copy_db(root: Path, tmp_path: Path) -> Path:
    """The worker's database, key and anchor file, copied to ``tmp_path/data``."""
    src = sqlite3.connect(root / "data" / "accu-ingest.db")
    (tmp_path / "data").mkdir()
    target = tmp_path / "data" / "accu-ingest.db"
    dst = sqlite3.connect(target)
    src.backup(dst)
    src.close()
    dst.close()
    for name in ("audit.key", "audit.anchor"):
        shutil.copy2(root / "data" / name, tmp_path / "data" / name)
    return target


def test_every_step_is_recorded_and_the_chain_verifies(ingested: Path) -> None:
    con = sqlite3.connect(ingested / "data" / "accu-ingest.db")
    events = [e for (e,) in con.execute("SELECT event FROM audit_event ORDER BY seq")]
    con.close()
    for step in ("detected", "stable", "stored", "queued", "parsing", "ingested", "computed",
                 "moved"):
        assert step in events, step
    done = verify(ingested, ingested / "data" / "accu-ingest.db")
    assert done.returncode == 0 and "intact" in done.stdout


def test_each_files_steps_are_in_the_order_they_happened(ingested: Path) -> None:
    con = sqlite3.connect(ingested / "data" / "accu-ingest.db")
    rows = con.execute("SELECT source_file_id, event, at FROM audit_event "
                       "WHERE source_file_id IS NOT NULL ORDER BY seq").fetchall()
    con.close()
    steps = ["detected", "stable", "stored", "queued", "parsing", "ingested", "moved"]
    by_file: dict[int, list[str]] = {}
    for file_id, event, _ in rows:
        by_file.setdefault(file_id, []).append(event)
    assert len(by_file) == 2
    for events in by_file.values():
        assert [e for e in events if e in steps] == steps
    stamps = [at for _, _, at in rows]
    assert stamps == sorted(stamps)  # seq order is time order


@pytest.mark.parametrize(("sql", "bad"), [
    ("UPDATE audit_event SET details = replace(details, '100_Report', '999_Report') "
     "WHERE seq = 2", 2),  # event 1 is chain_keyed
    ("DELETE FROM audit_event WHERE seq = 5", 6),
    ("UPDATE audit_event SET seq = seq + 1000 WHERE seq >= 7", 1007),
])
def test_tampering_is_detected_and_named(ingested: Path, tmp_path: Path, sql: str,
                                         bad: int) -> None:
    db = copy_db(ingested, tmp_path)
    con = sqlite3.connect(db)
    con.execute(sql)
    con.commit()
    con.close()
    done = verify(tmp_path, db)
    assert done.returncode == 1
    assert f"BROKEN at event {bad}" in done.stdout


# --- a forger with write access to the database ---------------------------------------------

@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real trail of over 500 events: 80 reports through the one-shot ingest."""
    root = tmp_path_factory.mktemp("trail")
    folder = root / "exports" / "Job-80"
    folder.mkdir(parents=True)
    for i in range(80):
        (folder / f"S{i:02d}_Report.csv").write_bytes(report_bytes(f"trail-{i}"))
    done = subprocess.run([sys.executable, "-m", "worker", "ingest", "--data-dir",
                           str(root / "data"), str(folder)],
                          capture_output=True, text=True, timeout=300, cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert events_in(root / "data" / "accu-ingest.db") > 550
    return root


def events_in(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute("SELECT max(seq) FROM audit_event").fetchone()[0])
    finally:
        con.close()


def plain_sha256(prev: str, row: tuple[Any, ...]) -> str:
    """An event's hash as the release before keyed hashes computed it."""
    seq, at, host, pid, version, event, sha256, file_id, details = row
    body = json.dumps([prev, seq, at, host, pid, version, event, sha256, file_id, details],
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


COLUMNS = "seq, at, host, pid, version, event, sha256, source_file_id, details"


def rehash_from(con: sqlite3.Connection, first: int) -> None:
    """Recompute every hash from event ``first`` on, the way a forger who knows the old
    algorithm would: the chain is then consistent again."""
    prev = con.execute("SELECT hash FROM audit_event WHERE seq = ?", (first - 1,)).fetchone()
    prev_hash = prev[0] if prev else "0" * 64
    rows = con.execute(f"SELECT {COLUMNS} FROM audit_event WHERE seq >= ? ORDER BY seq",
                       (first,)).fetchall()
    for row in rows:
        digest = plain_sha256(prev_hash, row)
        con.execute("UPDATE audit_event SET prev_hash = ?, hash = ? WHERE seq = ?",
                    (prev_hash, digest, row[0]))
        prev_hash = digest


def tamper(db: Path, how: str) -> int:
    """Do one forgery; returns the event verify must name (0: it must name the anchor)."""
    data = db.parent
    con = sqlite3.connect(db)
    last = events_in(db)
    try:
        if how == "delete the last event":
            con.execute("DELETE FROM audit_event WHERE seq = ?", (last,))
            return 0
        if how == "delete the last 500 events":
            con.execute("DELETE FROM audit_event WHERE seq > ?", (last - 500,))
            return 0
        if how == "edit an event, recompute every later hash with plain SHA-256":
            target = last - 40
            con.execute("UPDATE audit_event SET details = replace(details, 'S3', 'S9') "
                        "WHERE seq = ?", (target,))
            rehash_from(con, target)
            return target
        if how == "append a forged event":
            head = con.execute("SELECT hash FROM audit_event WHERE seq = ?", (last,)).fetchone()
            row = (last + 1, "2026-01-01T00:00:00.000000+00:00", "forger", 1, "0.1.0",
                   "ingested", "0" * 64, 1, "{}")
            con.execute(f"INSERT INTO audit_event ({COLUMNS}, prev_hash, hash) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (*row, head[0], plain_sha256(head[0], row)))
            return last + 1
        if how == "truncate the anchor file":
            (data / "audit.anchor").write_bytes(b"")
            return 0
        if how == "cut the anchor file's last line short":
            anchor = data / "audit.anchor"
            anchor.write_bytes(anchor.read_bytes()[:-20])
            return 0
        if how == "swap the key":
            (data / "audit.key").write_text("f" * 64 + "\n")
            return 1  # the trail is keyed from its first event
        raise AssertionError(how)
    finally:
        con.commit()
        con.close()


FORGERIES = ["delete the last event", "delete the last 500 events",
             "edit an event, recompute every later hash with plain SHA-256",
             "append a forged event", "truncate the anchor file",
             "cut the anchor file's last line short", "swap the key"]


def test_the_untampered_trail_verifies_against_its_anchor(trail: Path, tmp_path: Path) -> None:
    db = copy_db(trail, tmp_path)
    done = verify(tmp_path, db)
    assert done.returncode == 0, done.stdout + done.stderr
    last = events_in(db)
    assert f"chain intact: {last:,} events, HMAC-SHA256 keyed since event 1" in done.stdout
    assert f"the last, event {last:,} at " in done.stdout and "trail's end" in done.stdout


@pytest.mark.parametrize("how", FORGERIES)
def test_each_forgery_is_detected_and_named(trail: Path, tmp_path: Path, how: str) -> None:
    db = copy_db(trail, tmp_path)
    bad = tamper(db, how)
    done = verify(tmp_path, db)
    assert done.returncode == 1, f"{how}: not detected\n{done.stdout}{done.stderr}"
    if bad:
        assert f"BROKEN at event {bad}:" in done.stdout
    else:
        assert "audit anchor MISMATCH" in done.stdout
    if how.startswith("delete"):
        assert "deleted from its end" in done.stdout
    if how == "swap the key":
        assert "the key was swapped" in done.stdout


def test_a_trail_written_before_keyed_hashes_still_verifies_and_is_keyed_on(
        tmp_path: Path) -> None:
    """A database the previous release wrote (10 plain SHA-256 events, no key, no anchor)."""
    data = tmp_path / "data"
    data.mkdir()
    db = data / "accu-ingest.db"
    db.write_bytes(gzip.decompress((FIXTURES / "before-keyed-trail.db.gz").read_bytes()))
    before = verify(tmp_path, db)
    assert before.returncode == 0, before.stdout + before.stderr
    assert "chain intact: 10 events, plain SHA-256 only" in before.stdout

    export = tmp_path / "exports" / "after"
    export.mkdir(parents=True)
    (export / "A_Report.csv").write_bytes(report_bytes("upgrade"))
    done = subprocess.run([sys.executable, "-m", "worker", "ingest", "--data-dir", str(data),
                           str(export)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    after = verify(tmp_path, db)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "HMAC-SHA256 keyed since event 11" in after.stdout

    # Passing the keyed events off as plain ones: rewrite an old event and recompute onwards.
    con = sqlite3.connect(db)
    con.execute("UPDATE audit_event SET details = replace(details, '25_Report', '99_Report') "
                "WHERE seq = 3")
    rehash_from(con, 3)
    con.commit()
    con.close()
    forged = verify(tmp_path, db)
    assert forged.returncode == 1
    assert "BROKEN at event 11:" in forged.stdout  # chain_keyed: its hash must be keyed


def test_a_process_with_another_key_refuses_to_write_to_the_trail(trail: Path,
                                                                   tmp_path: Path) -> None:
    """Two machines on one database, each with a key file of its own: the second stops at
    start instead of appending events the trail's key does not check."""
    db = copy_db(trail, tmp_path)
    before = events_in(db)
    export = tmp_path / "exports" / "Job"
    export.mkdir(parents=True)
    (export / "B_Report.csv").write_bytes(report_bytes("other machine"))
    done = subprocess.run([sys.executable, "-m", "worker", "ingest", "--data-dir",
                           str(tmp_path / "elsewhere"), "--database-url", f"sqlite:///{db}",
                           str(export)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 2
    assert "the audit trail is keyed with key fingerprint" in done.stderr
    assert "the same key" in done.stderr
    assert events_in(db) == before
    assert verify(tmp_path, db).returncode == 0


def test_a_running_worker_checkpoints_the_head_so_a_cut_after_its_crash_is_found(
        tmp_path: Path) -> None:
    """The scheduler checkpoints while files arrive, without a graceful stop to rely on."""
    worker = WorkerProcess(tmp_path, "--config",
                           str(write_config(tmp_path, audit_anchor_seconds=0.5)))
    worker.start()
    try:
        (worker.inbox / "Job").mkdir()
        for i in range(3):
            (worker.inbox / "Job" / f"R{i}_Report.csv").write_bytes(report_bytes(f"run-{i}"))
        worker.wait_final(3)
        db = worker.data / "accu-ingest.db"

        def anchored_head() -> bool:
            lines = (worker.data / "audit.anchor").read_text().splitlines()
            return int(lines[-1].split()[0]) == events_in(db)
        wait_for(anchored_head, timeout=30, what="a checkpoint of the trail's head")
    finally:
        worker.stop(signal.SIGKILL)
    assert worker.cli("audit", "verify").returncode == 0
    con = sqlite3.connect(db)
    con.execute("DELETE FROM audit_event WHERE seq = (SELECT max(seq) FROM audit_event)")
    con.commit()
    con.close()
    done = worker.cli("audit", "verify")
    assert done.returncode == 1 and "deleted from its end" in done.stdout
