"""Outages. The data folder's disk fills up, another process holds
SQLite's write lock, SIGTERM arrives in the middle of a burst: nothing is lost, and the worker
recovers by itself once the fault clears.

The disk faults use a real size-limited file system: a tmpfs mounted (as root) on the worker's
data folder, filled to the last byte. (Remounting it read-only under the running worker is refused
while the worker has files open for writing, so disk full stands for "unwritable".)
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.reports import random_peaks, report
from support.workers import WorkerProcess, files_under, wait_for, write_config

from worker.record.models import Injection, SourceFile

FAST = {"lease_seconds": 5.0, "reconcile_seconds": 0.5}


def _reports(n: int, seed: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    return {f"O{seed}_{i:03d}_Report.csv": report(random_peaks(rng)).encode() for i in range(n)}


def _drop_all(inbox: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (inbox / name).write_bytes(data)


def _assert_each_once(worker: WorkerProcess, files: dict[str, bytes]) -> None:
    """Every file ingested once, one injection each, the inbox empty, the trail intact."""
    rows = {r.name: r for r in SourceFile.select()}
    assert sorted(rows) == sorted(files)
    assert {r.state for r in rows.values()} == {"ingested"}
    for row in rows.values():
        assert Injection.select().where(Injection.source_file == row).count() == 1
    wait_for(lambda: not files_under(worker.inbox), timeout=30, what="empty inbox")
    assert {p.name for p in files_under(worker.data / "processed")} == set(files)
    verify = worker.cli("audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs where the worker keeps its data (database, queue, raw store)."""
    data = tmp_path / "data"
    data.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(data)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs (CI runs as root): {mounted.stderr.strip()}")
        pytest.skip(f"mounting a size-limited tmpfs needs root: {mounted.stderr.strip()}")
    try:
        yield data
    finally:
        subprocess.run(["umount", "-l", str(data)], check=False)


def _fill(disk: Path) -> Path:
    """Write until the file system says it is full; returns the filler."""
    filler = disk / "filler.bin"
    chunk = b"\0" * (256 * 1024)
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(chunk)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    with contextlib.suppress(OSError), open(filler, "ab") as fh:  # the last few bytes too
        while True:
            fh.write(b"\0" * 512)
            fh.flush()
    return filler


def test_disk_full_loses_nothing_and_recovers_by_itself(tmp_path: Path, small_disk: Path,
                                                        open_db) -> None:
    worker = WorkerProcess(tmp_path, "--config", str(write_config(tmp_path, **FAST)))
    worker.start()
    before = _reports(3, seed=1)
    _drop_all(worker.inbox, before)
    worker.wait_final(3)
    filler = _fill(small_disk)
    during = _reports(12, seed=2)
    _drop_all(worker.inbox, during)
    time.sleep(6)  # longer than the stability window, a lease and several reconciler passes
    assert worker.alive()
    assert worker.status()["files"]["ingested"] == 3  # nothing could be written meanwhile
    assert len(files_under(worker.inbox)) == len(during)  # nothing left the inbox unsafely
    filler.unlink()
    worker.wait_final(3 + len(during), timeout=90)
    open_db(worker.data)
    _assert_each_once(worker, {**before, **during})
    worker.stop()


def test_sqlite_write_lock_held_elsewhere_delays_but_loses_nothing(worker: WorkerProcess,
                                                                   open_db) -> None:
    worker.start()
    first = _reports(2, seed=4)
    _drop_all(worker.inbox, first)
    worker.wait_final(2)
    holder = sqlite3.connect(worker.data / "accu-ingest.db", timeout=30, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing: the worker must wait
    files = _reports(10, seed=5)
    _drop_all(worker.inbox, files)
    time.sleep(8)
    assert worker.alive()
    holder.execute("ROLLBACK")
    holder.close()
    worker.wait_final(12, timeout=90)
    open_db(worker.data)
    _assert_each_once(worker, {**first, **files})


def test_sigterm_mid_burst_finishes_or_requeues_then_completes(worker: WorkerProcess,
                                                               open_db) -> None:
    worker.start()
    files = _reports(60, seed=6)
    writer = threading.Thread(target=_drop_all, args=(worker.inbox, files))
    writer.start()
    wait_for(lambda: worker.status()["files"]["ingested"] >= 5, what="the burst under way")
    assert worker.stop(signal.SIGTERM) == 0  # graceful: in-flight files finish first
    writer.join()
    open_db(worker.data)
    states = {r.state for r in SourceFile.select()}
    assert states <= {"queued", "processing", "ingested"}
    done = SourceFile.select().where(SourceFile.state == "ingested").count()
    assert done >= 5
    worker.start()
    worker.wait_final(len(files), timeout=90)
    _assert_each_once(worker, files)
