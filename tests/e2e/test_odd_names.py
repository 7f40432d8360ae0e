"""A file whose name is not UTF-8 is that file's problem only.

Older Windows PCs and network shares write Latin-1 names (``L\\xf6sung.csv``); on Linux such a
name is bytes that no text column takes. It used to fail the registration of its whole batch,
retried every second for ever, each retry writing the batch's bytes into a new raw pack. Now
the ledger shows the name with its undecodable bytes as escapes, keeps the bytes, and the file
goes where any other goes, under its own name.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from support.reports import report_bytes
from support.workers import WorkerProcess, files_under, wait_for

from worker.record.models import AuditEvent, SourceFile, database

LATIN1 = b"L\xf6sung_Report.csv"  # "Lösung" in Latin-1: not UTF-8
FOLDER = b"Pr\xfcfung"  # "Prüfung": a folder name in Latin-1 too
CUT = b"Kl\xe4r_Report.csv"  # "Klär": its content is cut off, so it is rejected for that



def _under(folder: Path, *names: bytes) -> Path:
    """A path whose parts are raw bytes, as the OS hands them out."""
    return Path(os.fsdecode(os.path.join(os.fsencode(folder), *names)))


def _drop_odd_ones(folder: Path) -> None:
    _under(folder, LATIN1).write_bytes(report_bytes(1000))
    _under(folder, FOLDER).mkdir()
    _under(folder, FOLDER, b"S1_Report.csv").write_bytes(report_bytes(1001))
    cut = report_bytes(1002)
    _under(folder, CUT).write_bytes(cut[: cut.index(b"Sum,")])


def _packs(worker: WorkerProcess) -> int:
    return len(list((worker.data / "raw").rglob("*.pack")))


def test_a_name_that_is_not_utf8_does_not_stop_intake(worker: WorkerProcess, open_db) -> None:
    # Dropped while the worker is down: the start-up scan takes them in one batch with the
    # ordinary files beside them.
    for i in range(10):
        (worker.inbox / f"S{i:02d}_Report.csv").write_bytes(report_bytes(i))
    _drop_odd_ones(worker.inbox)
    worker.start()
    for i in range(10, 20):
        (worker.inbox / f"S{i:02d}_Report.csv").write_bytes(report_bytes(i))
    status = worker.wait_final(23, timeout=90)
    assert status["files"]["ingested"] == 22 and status["files"]["rejected"] == 1
    wait_for(lambda: not files_under(worker.inbox), timeout=30, what="the inbox emptied")

    # Each file left under its own name, bytes and all.
    processed, quarantine = worker.data / "processed", worker.data / "quarantine"
    assert LATIN1 in os.listdir(os.fsencode(processed))
    assert _under(processed, LATIN1).read_bytes() == report_bytes(1000)
    assert _under(processed, FOLDER, b"S1_Report.csv").read_bytes() == report_bytes(1001)
    assert sorted(os.listdir(os.fsencode(quarantine))) == [CUT, CUT + b".reason.txt"]
    reason = _under(quarantine, CUT + b".reason.txt").read_text(encoding="utf-8")
    assert "file: Kl\\xe4r_Report.csv" in reason and "Sum" in reason

    # The ledger shows the names readably, with the bytes kept; the trail verifies.
    open_db(worker.data)
    odd = {r.path: r for r in SourceFile.select().where(SourceFile.path_bytes.is_null(False))}
    assert set(odd) == {"L\\xf6sung_Report.csv", "Pr\\xfcfung/S1_Report.csv",
                        "Kl\\xe4r_Report.csv"}
    assert bytes(odd["L\\xf6sung_Report.csv"].path_bytes) == LATIN1
    assert odd["L\\xf6sung_Report.csv"].state == "ingested"
    assert odd["Kl\\xe4r_Report.csv"].state == "rejected"
    assert "Sum" in odd["Kl\\xe4r_Report.csv"].error
    assert [r.state for r in SourceFile.select()].count("ingested") == 22
    verify = worker.cli("audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # The raw store took each batch once: no pack after pack for a batch tried again.
    packs = _packs(worker)
    assert packs <= 23
    time.sleep(3)  # more than a rescan (rescan_seconds = 2)
    assert _packs(worker) == packs
    assert SourceFile.select().count() == 23  # nothing read again as new

    # A retry finds the quarantined file by its real name, and rewrites its reason.
    database.close()
    retried = worker.cli("retry", str(odd["Kl\\xe4r_Report.csv"].id), "--reason", "test")
    assert retried.returncode == 1, retried.stdout + retried.stderr
    assert "Kl\\xe4r_Report.csv" in retried.stdout and "Traceback" not in retried.stderr
    assert "retry" in [e.event for e in AuditEvent.select().where(
        AuditEvent.source_file_id == odd["Kl\\xe4r_Report.csv"].id)]
    assert sorted(os.listdir(os.fsencode(quarantine))) == [CUT, CUT + b".reason.txt"]
    assert worker.cli("audit", "verify").returncode == 0
    assert worker.stop() == 0


def test_one_shot_ingest_of_a_folder_with_names_that_are_not_utf8(tmp_path: Path) -> None:
    worker = WorkerProcess(tmp_path)
    folder = tmp_path / "export"
    folder.mkdir()
    for i in range(5):
        (folder / f"S{i}_Report.csv").write_bytes(report_bytes(i))
    _drop_odd_ones(folder)
    done = worker.cli("ingest", str(folder))
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1, done.stdout + done.stderr  # the cut-off one is rejected
    assert "REJECTED export/Kl\\xe4r_Report.csv: " in done.stdout
    assert done.stdout.rstrip().endswith("7 ingested, 1 rejected")
    assert _under(folder, LATIN1).is_file()  # a one-shot leaves its sources where they are

    good = tmp_path / "good"
    good.mkdir()
    _under(good, LATIN1).write_bytes(report_bytes(2000))
    again = worker.cli("ingest", str(good))
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.rstrip().endswith("1 ingested, 0 rejected")
    assert worker.cli("audit", "verify").returncode == 0
