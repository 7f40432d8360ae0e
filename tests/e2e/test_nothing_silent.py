"""What used to stay without a word: each now has one log line, a field in /status and, while the
lab has to act, a /readyz failure saying what to do; and each recovers once it is fixed.

Links and pipes in the inbox, a processed/ folder the worker cannot write to, an inbox folder
renamed away and made again: real worker subprocesses on real folders. And a disposal whose record
a full disk cut short ends recorded where the file went.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from peewee import IntegrityError
from support.corpus import IN_CI
from support.pipeline import Pipeline
from support.reports import report_bytes
from support.workers import (
    UnprivilegedWorker,
    WorkerProcess,
    can_drop_override,
    files_under,
    wait_for,
    write_config,
)


def _not_ready(worker: WorkerProcess, check: str) -> str:
    """Wait for /readyz to fail ``check``; its words."""
    def failing() -> str | None:
        code, body = worker.get("/readyz")
        return body["failed"].get(check) if code == 503 else None
    return wait_for(failing, timeout=30, what=f"/readyz 503 naming {check}")


def _ready(worker: WorkerProcess) -> None:
    wait_for(lambda: worker.get("/readyz") == (200, {"status": "ready", "failed": {}}),
             timeout=30, what="/readyz 200")



def _log(worker: WorkerProcess) -> str:
    return worker.log.read_text(errors="replace")


def test_links_and_pipes_in_the_inbox_are_said_once_and_fail_readiness_until_removed(
        tmp_path: Path) -> None:
    worker = WorkerProcess(tmp_path, "--config", str(write_config(tmp_path,
                                                                  rescan_seconds=1.0)))
    outside = tmp_path / "elsewhere_Report.csv"
    outside.write_bytes(report_bytes(1))
    (worker.inbox / "sub").mkdir()
    os.symlink(outside, worker.inbox / "Link_Report.csv")
    os.symlink(tmp_path, worker.inbox / "sub" / "linked-folder")
    os.mkfifo(worker.inbox / "Pipe_Report.csv")
    worker.start()
    try:
        why = _not_ready(worker, "special_files")
        assert why.startswith("3 entries in the inbox are not files and are never read: ")
        assert "Link_Report.csv (symbolic link)" in why
        assert "Pipe_Report.csv (named pipe)" in why
        assert "sub/linked-folder (symbolic link)" in why
        assert "remove it" in why
        intake = worker.status()["intake"]
        assert intake["special_files"] == 3
        assert worker.metric("accu_ingest_intake_special_files") == 3.0
        assert sorted((e["path"], e["kind"]) for e in intake["special_paths"]) == [
            ("Link_Report.csv", "symbolic link"), ("Pipe_Report.csv", "named pipe"),
            ("sub/linked-folder", "symbolic link")]

        # One dropped while it runs is noticed by its event, as a file would be.
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(worker.inbox / "sub" / "Socket_Report.csv"))
        wait_for(lambda: worker.status()["intake"]["special_files"] == 4, timeout=10,
                 what="the socket reported")
        time.sleep(4)  # four rescans: each offender is said once, not once per rescan
        log = _log(worker)
        for name, kind in (("Link_Report.csv", "symbolic link"), ("Pipe_Report.csv",
                                                                  "named pipe"),
                           ("sub/linked-folder", "symbolic link"),
                           ("sub/Socket_Report.csv", "socket")):
            assert log.count(f"{name} in the inbox is a {kind}, not a file: it is never "
                             "read") == 1, log[-3000:]
        assert "Traceback" not in log
        assert worker.status()["files"]["ingested"] == 0  # the link was never followed
        assert outside.exists()

        # Fixed: the link replaced by the file itself, the rest removed.
        (worker.inbox / "Link_Report.csv").unlink()
        (worker.inbox / "Link_Report.csv").write_bytes(outside.read_bytes())
        (worker.inbox / "Pipe_Report.csv").unlink()
        (worker.inbox / "sub" / "linked-folder").unlink()
        server.close()
        (worker.inbox / "sub" / "Socket_Report.csv").unlink()
        worker.wait_final(1)
        _ready(worker)
        intake = worker.status()["intake"]
        assert intake["special_files"] == 0 and intake["special_paths"] == []
        assert worker.metric("accu_ingest_intake_special_files") == 0.0
        assert "Pipe_Report.csv (a named pipe) is no longer in the inbox" in _log(worker)
    finally:
        assert worker.stop() == 0


def test_an_unwritable_processed_folder_is_one_line_and_a_readiness_failure_until_fixed(
        tmp_path: Path) -> None:
    if not can_drop_override(tmp_path):
        if IN_CI:
            pytest.fail("setpriv cannot make a folder unwritable here; CI must allow it")
        pytest.skip("no way to make a folder unwritable to this user (setpriv without caps)")
    processed = tmp_path / "data" / "processed"
    processed.mkdir(parents=True)
    processed.chmod(0o555)  # as a lab's share or a copied folder arrives
    worker = UnprivilegedWorker(tmp_path, "--config", str(write_config(tmp_path)))
    worker.start()
    try:
        files = {f"S{i}_Report.csv": report_bytes(i) for i in range(6)}
        for name, data in files.items():
            (worker.inbox / name).write_bytes(data)
        worker.wait_final(len(files))

        why = _not_ready(worker, "disposal")
        assert why == (f"{processed} is not writable (Permission denied): 6 file(s) cannot "
                       f"leave the inbox; make {processed} writable by user root, and they "
                       "move on their own")
        [blocked] = worker.status()["disposal_blocked"]
        assert blocked["folder"] == str(processed)
        assert blocked["problem"] == "not writable (Permission denied)"
        assert blocked["files"] == 6
        assert worker.metric("accu_ingest_disposal_blocked_files") == 6.0

        # The disposal poll tries every waiting file each second: the log says it once per
        # process (the watcher's and each consumer process that met it), not per file per poll.
        said = _log(worker).count(f"cannot dispose of files: {processed} is not writable")
        assert 1 <= said <= 3
        time.sleep(5)
        log = _log(worker)
        assert log.count(f"cannot dispose of files: {processed} is not writable") == said
        assert "Traceback" not in log and "not done yet" not in log
        assert sorted(p.name for p in files_under(worker.inbox)) == sorted(files)

        processed.chmod(0o755)
        wait_for(lambda: not files_under(worker.inbox), timeout=30, what="the inbox emptied")
        _ready(worker)
        assert worker.status()["disposal_blocked"] == []
        assert worker.metric("accu_ingest_disposal_blocked_files") == 0.0
        assert sorted(p.name for p in files_under(processed)) == sorted(files)
        assert f"{processed} takes files again" in _log(worker)
        assert worker.cli("audit", "verify").returncode == 0
    finally:
        processed.chmod(0o755)
        assert worker.stop() == 0


def test_an_inbox_replaced_by_a_new_folder_is_watched_again_within_seconds(
        tmp_path: Path) -> None:
    # A rescan an hour away: only an observer re-armed on the new folder sees a new file soon.
    worker = WorkerProcess(tmp_path, "--config", str(write_config(tmp_path,
                                                                  rescan_seconds=3600.0)))
    worker.start()
    try:
        (worker.inbox / "S1_Report.csv").write_bytes(report_bytes(1))
        worker.wait_final(1)
        # The instrument is writing a file (open, not closed) when the folder is swapped.
        writing = open(worker.inbox / "S2_Report.csv", "wb")  # noqa: SIM115
        writing.write(report_bytes(2)[:100])
        writing.flush()
        old = tmp_path / "inbox.old"
        os.rename(worker.inbox, old)
        worker.inbox.mkdir()

        why = _not_ready(worker, "inbox_replaced")
        assert f"the inbox {worker.inbox} was replaced by a new folder" in why
        assert f"the old folder, now {old}, still holds 1 file(s) that will never be " \
               f"taken: move them into {worker.inbox}, or remove the old folder" in why
        intake = worker.status()["intake"]
        assert intake["inbox_replacements"] == 1
        assert intake["inbox_replaced"]["old_folder"] == str(old)
        assert intake["inbox_replaced"]["files_left"] == 1
        assert _log(worker).count(f"the inbox {worker.inbox} was replaced by a new folder "
                                  f"(the old one is now {old})") == 1

        # New files in the new folder are taken within seconds, not at the next rescan.
        started = time.monotonic()
        (worker.inbox / "S3_Report.csv").write_bytes(report_bytes(3))
        worker.wait_final(2, timeout=20)
        assert time.monotonic() - started < 10

        # The lab moves what was left into the inbox: taken, and readiness is back.
        writing.write(report_bytes(2)[100:])
        writing.close()
        os.rename(old / "S2_Report.csv", worker.inbox / "S2_Report.csv")
        worker.wait_final(3, timeout=20)
        _ready(worker)
        intake = worker.status()["intake"]
        assert intake["inbox_replaced"] is None and intake["inbox_replacements"] == 1
        assert f"the inbox's old folder {old} holds no files now" in _log(worker)
        assert "Traceback" not in _log(worker)
    finally:
        assert worker.stop() == 0


def _moved(row_id: int) -> list[dict]:
    from worker.record.models import AuditEvent
    return [json.loads(e.details) for e in AuditEvent.select().where(
        AuditEvent.event == "moved", AuditEvent.source_file_id == row_id).order_by(AuditEvent.seq)]


def test_files_moved_before_a_full_disk_stopped_the_record_are_recorded_where_they_went(
        pipeline: Pipeline) -> None:
    """The move is done, its record fails (the database's disk is full), and the next poll
    finishes the record. A copy to another volume may keep a coarser mtime than the inbox's (FAT
    keeps 2 s, SMB 100 ns): that file was taken for a copy cut short, deleted from processed/ and
    audited as gone with no destination."""
    from worker.consume import dispose
    from worker.record.models import Disposal, SourceFile

    pipeline.drop("Kept_Report.csv", report_bytes(7))
    pipeline.drop("Lost_Report.csv", report_bytes(8))
    rows = pipeline.take("Kept_Report.csv", "Lost_Report.csv")
    # The transaction that records the moves fails as on a full disk (a real SQLite trigger).
    pipeline.database.execute_sql(
        "CREATE TRIGGER disk_full BEFORE DELETE ON disposal "
        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    with pytest.raises(IntegrityError, match="disk is full"):
        pipeline.ingest(rows)
    processed = pipeline.settings.processed_dir
    kept, lost = processed / "Kept_Report.csv", processed / "Lost_Report.csv"
    assert kept.read_bytes() == report_bytes(7) and lost.read_bytes() == report_bytes(8)
    assert files_under(pipeline.settings.inbox) == []
    assert Disposal.select().count() == 2  # where each was going, kept through the failure
    pipeline.database.execute_sql("DROP TRIGGER disk_full")

    st = kept.stat()  # as a FAT volume keeps it: to the even second
    os.utime(kept, ns=(st.st_atime_ns, st.st_mtime_ns // 2_000_000_000 * 2_000_000_000))
    lost.unlink()  # and this one removed from processed/ meanwhile by hand

    done = dispose.dispose_rows(pipeline.settings, list(SourceFile.select()))
    assert done == {rows[0].id: "moved", rows[1].id: "gone"}
    assert kept.read_bytes() == report_bytes(7)  # still there, and recorded there
    [event] = _moved(rows[0].id)
    assert event["action"] == "moved" and event["to"] == str(kept) and event["recovered"]
    [event] = _moved(rows[1].id)
    assert event["action"] == "gone" and event["to"] is None
    assert event["headed_to"] == str(lost)  # where it was last seen going
    assert Disposal.select().count() == 0


@pytest.fixture
def read_only_quarantine(pipeline: Pipeline) -> Iterator[Path]:
    """data/quarantine as a read-only file system of its own (root writes there neither)."""
    quarantine = pipeline.settings.quarantine_dir
    quarantine.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs",
                              str(quarantine)], capture_output=True, text=True)
    if mounted.returncode != 0:
        if IN_CI:
            pytest.fail(f"cannot mount a tmpfs (CI runs as root): {mounted.stderr.strip()}")
        pytest.skip(f"mounting a read-only tmpfs needs root: {mounted.stderr.strip()}")
    try:
        yield quarantine
    finally:
        subprocess.run(["umount", "-l", str(quarantine)], check=False)


def test_a_read_only_quarantine_is_named_with_its_fix_and_forgotten_once_files_move(
        pipeline: Pipeline, read_only_quarantine: Path) -> None:
    from worker.consume import blocked, dispose
    from worker.record.models import SourceFile

    quarantine = read_only_quarantine
    blocked.keep_only(set())  # this process's record starts empty, whatever ran in it before
    pipeline.drop("Garbage_Report.csv", "not a report at all\n")
    [row] = pipeline.take("Garbage_Report.csv")
    assert pipeline.ingest([row]) == {row.id: "rejected"}
    assert (pipeline.settings.inbox / "Garbage_Report.csv").exists()
    assert blocked.problem() == (
        f"{quarantine} is on a read-only file system (Read-only file system): 1 file(s) cannot "
        f"leave the inbox; mount the disk of {quarantine} read-write, and they move on their "
        "own")
    [entry] = blocked.status()
    assert (entry["folder"], entry["files"]) == (str(quarantine), 1)

    subprocess.run(["mount", "-o", "remount,rw", str(quarantine)], check=True)
    assert dispose.dispose_rows(pipeline.settings, [SourceFile.get_by_id(row.id)]) == \
        {row.id: "quarantined"}
    assert blocked.problem() is None and blocked.status() == []
    assert (quarantine / "Garbage_Report.csv").read_text() == "not a report at all\n"
