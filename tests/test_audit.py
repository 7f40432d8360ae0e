"""The audit trail is hash-chained: any edit, insertion or deletion is found and named."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest


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
    src = sqlite3.connect(root / "data" / "accu-ingest.db")
    (tmp_path / "data").mkdir()
    target = tmp_path / "data" / "accu-ingest.db"
    dst = sqlite3.connect(target)
    src.backup(dst)
    src.close()
    dst.close()
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
     "WHERE seq = 1", 1),
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
