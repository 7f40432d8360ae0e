"""A file still being written never leaves the inbox as a fragment, and disposal is recorded.

A writer that closes the file between appends, or pauses with it open where closes cannot be seen
(polling, a network share), gets its file taken early; the fragment is rejected. It must then stay
where its writer appends to it: the grown file is taken again as a revision, which supersedes the
fragment, and the complete report is ingested. Disposal itself records where a file goes before
moving it, so an interruption (a full disk) leaves every file in the inbox or where the trail says.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import random
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.corpus import IN_CI
from support.reports import HEADER, random_peaks, report
from support.workers import WorkerProcess, files_under, wait_for, write_config

from worker.parsers.options import NO_OPTIONS
from worker.record.models import AuditEvent, Injection, Sample, SourceFile


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _moved_events() -> dict[int, list[dict]]:
    events: dict[int, list[dict]] = {}
    for e in AuditEvent.select().where(AuditEvent.event == "moved").order_by(AuditEvent.seq):
        events.setdefault(e.source_file_id, []).append(json.loads(e.details))
    return events


def _ingested_whole(worker: WorkerProcess, data: bytes, timeout: float = 90) -> SourceFile:
    """Wait until the complete bytes are ingested and nothing is left in the inbox."""
    def done() -> SourceFile | None:
        row = SourceFile.get_or_none(SourceFile.sha256 == _sha(data))
        if row is None or row.state != "ingested" or files_under(worker.inbox):
            return None
        return row if all(r.disposed for r in SourceFile.select()) else None
    return wait_for(done, timeout=timeout, what="the complete file ingested, all disposed")


def _assert_fragments_superseded(worker: WorkerProcess, whole: SourceFile, data: bytes) -> None:
    """The complete file went to processed/, nothing to quarantine/, and every earlier row of
    its path is a rejected fragment, superseded by the next revision (not moved anywhere)."""
    assert [p.read_bytes() for p in files_under(worker.data / "processed")] == [data]
    assert files_under(worker.data / "quarantine") == []
    rows = list(SourceFile.select().order_by(SourceFile.id))
    assert rows[-1].id == whole.id
    moved = _moved_events()
    for older, newer in itertools.pairwise(rows):
        assert older.state == "rejected" and newer.previous_id == older.id
        assert [e["action"] for e in moved[older.id]] == ["superseded"]
    assert [e["action"] for e in moved[whole.id]] == ["moved"]
    verify = worker.cli("audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_writer_that_closes_between_appends_gets_its_report_ingested_whole(
        worker: WorkerProcess, open_db) -> None:
    worker.start()
    data = report(random_peaks(random.Random(11), 6)).encode()
    path = worker.inbox / "S11_Report.csv"
    chunks = 6
    step = -(-len(data) // chunks)
    for start in range(0, len(data), step):  # one chunk a second, the file reopened each time
        with open(path, "ab") as fh:
            fh.write(data[start:start + step])
        time.sleep(1.0)
    open_db(worker.data)
    whole = _ingested_whole(worker, data)
    assert SourceFile.select().count() > 1  # the fragments were taken (and rejected)
    _assert_fragments_superseded(worker, whole, data)
    sample = Sample.get(Sample.sample_id == "S11")
    assert [i.source_file_id for i in sample.injections] == [whole.id]


def test_metadata_then_the_table_a_second_later_is_one_report_under_its_sample_name(
        worker: WorkerProcess, open_db) -> None:
    worker.start()
    lines = report(random_peaks(random.Random(42), 5)).split("\n")
    lines.insert(1, "Sample Name:,REAL-SAMPLE-42")
    table = lines.index(",".join(HEADER))
    head, tail = "\n".join(lines[:table]) + "\n", "\n".join(lines[table:])
    path = worker.inbox / "S42_Report.csv"
    path.write_text(head, encoding="utf-8")  # the metadata block, closed
    time.sleep(1.0)
    with open(path, "a", encoding="utf-8") as fh:  # the peak table, appended a second later
        fh.write(tail)
    data = (head + tail).encode()
    open_db(worker.data)
    whole = _ingested_whole(worker, data)
    assert whole.format == "agilent-openlab-csv/report"
    _assert_fragments_superseded(worker, whole, data)
    samples = [(s.sample_id, [i.source_file_id for i in s.injections]) for s in Sample.select()]
    assert samples == [("REAL-SAMPLE-42", [whole.id])]


def test_polling_a_writer_pausing_with_the_file_open_is_not_moved_from_under_it(
        tmp_path: Path, open_db) -> None:
    worker = WorkerProcess(tmp_path, "--config", str(write_config(tmp_path, polling=True)))
    worker.start()
    try:
        data = report(random_peaks(random.Random(394), 8)).encode()
        path = worker.inbox / "S394_Report.csv"
        with open(path, "wb") as fh:
            fh.write(data[:394])
            fh.flush()
            time.sleep(1.5)  # longer than the stability window: the fragment is taken
            fh.write(data[394:])
        open_db(worker.data)
        whole = _ingested_whole(worker, data)
        assert SourceFile.select().count() == 2
        _assert_fragments_superseded(worker, whole, data)
        assert Injection.select().count() == 1
    finally:
        worker.stop()


@pytest.fixture
def small_processed(tmp_path: Path) -> Iterator[Path]:
    """data/processed on a 1 MiB tmpfs of its own: moves into it are copies that can fail."""
    processed = tmp_path / "data" / "processed"
    processed.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(processed)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        if IN_CI:
            pytest.fail(f"cannot mount a tmpfs (CI runs as root): {mounted.stderr.strip()}")
        pytest.skip(f"mounting a size-limited tmpfs needs root: {mounted.stderr.strip()}")
    try:
        yield processed
    finally:
        subprocess.run(["umount", "-l", str(processed)], check=False)


def test_a_full_disk_during_disposal_leaves_every_file_where_the_trail_says(
        tmp_path: Path, small_processed: Path, open_db) -> None:
    rng = random.Random(5)
    files = {f"F{i:02d}_Report.csv": report(random_peaks(rng, 8)).encode() for i in range(16)}
    room = 3 * 4096  # three files fit (a tmpfs gives each a page), then the disk is full
    filler = small_processed / "filler.bin"
    with contextlib.suppress(OSError), open(filler, "wb") as fh:
        while True:
            fh.write(b"\0" * 4096)
            fh.flush()
    with open(filler, "r+b") as fh:
        fh.truncate(os.path.getsize(filler) - room)
    worker = WorkerProcess(tmp_path, "--config", str(write_config(tmp_path)))
    for name, data in files.items():  # there at the start: taken and disposed of together
        (worker.inbox / name).write_bytes(data)
    worker.start()
    try:
        worker.wait_final(len(files))
        open_db(worker.data)
        time.sleep(3)  # several disposal attempts against the full disk

        def where_the_trail_says() -> None:
            moved = _moved_events()
            for row in SourceFile.select():
                events = moved.get(row.id, [])
                if (worker.inbox / row.path).exists():
                    assert events == [], row.path
                    continue
                assert [e["action"] for e in events] == ["moved"], row.path
                target = Path(events[0]["to"])
                assert target.parent == small_processed and target.name == row.name
                assert target.read_bytes() == files[row.name]

        stuck = len(files_under(worker.inbox))
        assert 0 < stuck < len(files)  # some moved, the rest wait for room
        where_the_trail_says()
        filler.unlink()
        wait_for(lambda: not files_under(worker.inbox), timeout=60, what="empty inbox")
        wait_for(lambda: SourceFile.select().where(SourceFile.disposed == False).count() == 0,  # noqa: E712
                 timeout=30, what="every row disposed")
        where_the_trail_says()
        assert sorted(p.name for p in files_under(small_processed)) == sorted(files)
        verify = worker.cli("audit", "verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        worker.stop()


def test_the_database_locked_during_disposal_moves_nothing_until_it_can_record_it(
        tmp_path: Path) -> None:
    """Files final but not yet disposed of (a crash right after their commit) meet a database
    another process holds locked for longer than the busy timeout just as they would leave."""
    rng = random.Random(8)
    files = {f"L{i:02d}_Report.csv": report(random_peaks(rng)).encode() for i in range(8)}
    first = WorkerProcess(tmp_path, "--config",
                          str(write_config(tmp_path, after_ingest="keep")))
    for name, data in files.items():
        (first.inbox / name).write_bytes(data)
    first.start()
    first.wait_final(len(files))
    first.stop()
    sources = {name: first.inbox / name for name in files}
    shifted = {name: path.stat().st_mtime_ns for name, path in sources.items()}
    for path in sources.values():  # changed since read: disposal leaves them for now
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    db_path = tmp_path / "data" / "accu-ingest.db"
    with contextlib.closing(sqlite3.connect(db_path, isolation_level=None)) as con:
        con.execute("UPDATE source_file SET disposed = 0")  # final, not disposed of yet

    # The rows are found by the disposal poll alone: the watcher is told to ignore the files.
    worker = WorkerProcess(tmp_path, "--config", str(write_config(
        tmp_path, after_ingest="move", exclude=["*.csv"])))
    worker.start()
    try:
        time.sleep(2)
        assert len(files_under(worker.inbox)) == len(files)
        holder = sqlite3.connect(db_path, timeout=30, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            for name, path in sources.items():  # as read again: now they may leave
                os.utime(path, ns=(path.stat().st_atime_ns, shifted[name]))
            time.sleep(36)  # past the worker's busy timeout
            assert worker.alive()
            assert len(files_under(worker.inbox)) == len(files)  # nothing moved unrecorded
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        wait_for(lambda: not files_under(worker.inbox), timeout=60, what="empty inbox")
        with contextlib.closing(sqlite3.connect(db_path)) as con:
            wait_for(lambda: con.execute("SELECT COUNT(*) FROM source_file WHERE disposed = 0")
                     .fetchone()[0] == 0, timeout=30, what="every row disposed")
            rows = dict(con.execute("SELECT id, name FROM source_file"))
            events = [(file_id, json.loads(details)) for file_id, details in con.execute(
                "SELECT source_file_id, details FROM audit_event WHERE event = 'moved' "
                "ORDER BY seq")]
        for file_id, name in rows.items():
            mine = [e for i, e in events if i == file_id]
            assert [e["action"] for e in mine] == ["kept", "moved"], name
            assert Path(mine[-1]["to"]) == worker.data / "processed" / name
            assert Path(mine[-1]["to"]).read_bytes() == files[name]
        verify = worker.cli("audit", "verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        worker.stop()


def test_a_report_cut_inside_its_sum_row_is_not_taken_as_complete() -> None:
    """The part of a report written so far may end inside its Sum row, with a total that still
    agrees with the rows to the digits printed so far: not a complete report."""
    from worker.parsers import ParseError, agilent_openlab
    data = report(random_peaks(random.Random(3), 5))
    total = data.rsplit("Sum,", 1)[1].split(",", 1)[0]
    cut = data[:data.rindex("Sum,") + len("Sum,") + len(total) - 2]
    with pytest.raises(ParseError, match="Sum row has no line end"):
        agilent_openlab.parse(cut.encode(), "S3_Report.csv", NO_OPTIONS)
    assert agilent_openlab.parse(data.encode(), "S3_Report.csv", NO_OPTIONS).signals[0].peaks
