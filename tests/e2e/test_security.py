"""Hold the line: what a local account or a writer of the data folder must not get away with —
a row put into the SQLite queue is not unpickled, and nothing under data/ is open to other
accounts. Each against a real ``accu-ingest run`` with its consumer processes."""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.workers import WorkerProcess, wait_for, write_config

from worker.runtime.canary import report_bytes


class _MakesDirectory:
    """Unpickling this creates a directory: the proof that a payload was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (self.path,)


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual default: files 0644, folders 0755, unless the worker sees to it."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def events(data: Path, name: str) -> list[dict[str, Any]]:
    con = sqlite3.connect(data / "accu-ingest.db", timeout=30)
    try:
        return [json.loads(d) for (d,) in con.execute(
            "SELECT details FROM audit_event WHERE event = ? ORDER BY seq", (name,))]
    finally:
        con.close()


def test_a_pickle_put_into_the_sqlite_queue_is_refused_audited_and_not_run(
        tmp_path: Path, umask_022: None) -> None:
    worker = WorkerProcess(tmp_path, "--config", str(write_config(tmp_path)))
    worker.start()  # run, with its two consumer processes (the default)
    try:
        (worker.inbox / "Job").mkdir()
        (worker.inbox / "Job" / "first_Report.csv").write_bytes(report_bytes("first"))
        worker.wait_final(1)
        marker = tmp_path / "owned"
        evil = pickle.dumps(_MakesDirectory(str(marker)))
        con = sqlite3.connect(worker.data / "queue.db", timeout=30)
        con.execute("INSERT INTO task (queue, data, priority) VALUES (?, ?, 0)",
                    ("accu-ingest", evil))
        con.commit()
        con.close()

        seen = wait_for(lambda: events(worker.data, "payload_rejected"), timeout=30,
                        what="a payload_rejected audit event")
        assert seen[0]["reason"].startswith("unsigned")
        assert seen[0]["size"] == len(evil) and seen[0]["head"] == evil[:48].hex()
        assert not marker.exists()

        # The consumer processes keep working, and take the parent's signed tasks.
        (worker.inbox / "Job" / "second_Report.csv").write_bytes(report_bytes("second"))
        status = worker.wait_final(2)
        assert status["files"]["ingested"] == 2
        assert worker.status()["consumer_processes"]["restarts"] == 0
    finally:
        assert worker.stop() == 0
    assert not marker.exists()
    assert stat.S_IMODE((worker.data / "queue.key").stat().st_mode) == 0o600


def test_nothing_under_data_is_open_to_other_accounts(tmp_path: Path, umask_022: None) -> None:
    worker = WorkerProcess(tmp_path, "--config", str(write_config(tmp_path,
                                                                   log_format="json")))
    worker.start()
    try:
        (worker.inbox / "Job").mkdir()
        good = worker.inbox / "Job" / "good_Report.csv"
        good.write_bytes(report_bytes("perm"))
        (worker.inbox / "Job" / "junk.csv").write_bytes(b"not, an, export\n1, 2, 3\n")
        assert stat.S_IMODE(good.stat().st_mode) == 0o644
        status = worker.wait_final(2)
        assert (status["files"]["ingested"], status["files"]["rejected"]) == (1, 1)
        # Final in the ledger comes before the move out of the inbox: wait for both files.
        wait_for(lambda: not any(p.is_file() for p in worker.inbox.rglob("*")), timeout=60,
                 what="both files out of the inbox")
        open_while_running = opened(worker.data)
    finally:
        assert worker.stop() == 0
    data = worker.data
    for made in ("accu-ingest.db", "queue.db", "audit.key", "queue.key", "audit.anchor",
                 "processed/Job/good_Report.csv", "quarantine/Job/junk.csv.reason.txt",
                 "logs/accu-ingest-run.jsonl", "raw/packs"):
        assert (data / made).exists(), made
    assert open_while_running == [] and opened(data) == []
    assert stat.S_IMODE(data.stat().st_mode) == 0o700


def opened(data: Path) -> list[str]:
    """Every path under ``data`` (and itself) that group or others may read, write or enter."""
    found = []
    for path in [data, *data.rglob("*")]:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:  # a -wal or -shm file going away meanwhile
            continue
        if mode & 0o077:
            found.append(f"{path} {mode:04o}")
    return found


RACER = """
import sys, time
from pathlib import Path
from worker.record import keys
start = float(sys.argv[2])
while time.time() < start:
    pass
print(keys.load_or_create(Path(sys.argv[1])).decode())
"""


def test_processes_starting_at_once_share_one_generated_key(tmp_path: Path,
                                                             umask_022: None) -> None:
    """``run`` and its consumer processes (or several workers) create a key file at once: one
    writes it, every one reads the same key, and it is never overwritten."""
    import time

    path = tmp_path / "data" / "queue.key"
    start = time.time() + 1.5
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(path), str(start)],
                              stdout=subprocess.PIPE, text=True) for _ in range(8)]
    got = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert [p.returncode for p in procs] == [0] * 8
    assert len(got) == 1 and len(got.pop()) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
