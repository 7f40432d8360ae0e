"""A file that breaks the worker's own code (a bug, not bad input) must neither loop for ever
nor take the other files of its batch down with it.

The bug is injected by replacing one step of the pipeline for one file name; everything else
(the ledger, SQLite, the raw store, the audit chain) is real.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from support.reports import random_peaks, report

from worker.consume import ingest
from worker.intake import watcher
from worker.record import audit, db, ledger
from worker.record.models import SourceFile
from worker.settings import Settings

BROKEN = "S-2_Inj_1_Report.csv"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings(inbox=tmp_path / "inbox", data_dir=tmp_path / "data", max_attempts=2,
                 dispose_settle_seconds=0)  # files registered here are complete
    s.inbox.mkdir()
    db.open_database(s)
    return s


def _register(settings: Settings, names: list[str]) -> list[int]:
    batch = []
    for i, name in enumerate(names):
        path = settings.inbox / name
        path.write_text(report(random_peaks(random.Random(i))), encoding="utf-8")
        st = path.stat()
        batch.append((path, name, watcher.Candidate(st.st_size, st.st_mtime_ns, 0, 0)))
    return [row.id for row, _ in watcher.take_many(settings, batch, "test")]  # type: ignore[misc]


def test_a_bug_on_one_file_spares_its_batch_and_ends_in_a_rejection(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = ingest._write

    def buggy_write(row: SourceFile, parsed, s, known):  # type: ignore[no-untyped-def]
        if row.name == BROKEN:
            raise RuntimeError("simulated bug")
        return real_write(row, parsed, s, known)

    monkeypatch.setattr(ingest, "_write", buggy_write)
    ids = _register(settings, ["S-1_Inj_1_Report.csv", BROKEN, "S-3_Inj_1_Report.csv"])
    owner = ledger.owner_id("test")

    done = ingest.process_many(settings, ids, owner)
    assert sorted(done.values()) == ["ingested", "ingested"]  # the others were written
    broken = SourceFile.get(SourceFile.name == BROKEN)
    assert broken.state == "queued" and broken.lease_until > time.time()  # backing off

    ingest.process(settings, broken.id, owner)  # the second attempt fails the same way
    broken = SourceFile.get_by_id(broken.id)
    assert broken.state == "rejected"  # max_attempts = 2: it cannot loop for ever
    assert "internal error" in broken.error and "simulated bug" in broken.error
    assert (settings.quarantine_dir / (BROKEN + ".reason.txt")).exists()
    assert audit.verify().ok


def test_a_bug_after_the_rows_rolls_the_file_back_and_ends_in_a_rejection(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The results step fails for a file: its rows are rolled back with it (all or nothing),
    the others of the batch are written on their own, and the file is rejected in the end."""
    real_recompute = ingest._recompute

    def buggy_recompute(works, s, *rest):  # type: ignore[no-untyped-def]
        if any(w.row.name == BROKEN for w in works):
            raise RuntimeError("simulated bug in results")
        return real_recompute(works, s, *rest)

    monkeypatch.setattr(ingest, "_recompute", buggy_recompute)
    ids = _register(settings, ["S-1_Inj_1_Report.csv", BROKEN])
    owner = ledger.owner_id("test")
    assert list(ingest.process_many(settings, ids, owner).values()) == ["ingested"]
    broken = SourceFile.get(SourceFile.name == BROKEN)
    assert broken.state == "queued" and not list(broken.injections)  # nothing half-written
    ingest.process(settings, broken.id, owner)
    broken = SourceFile.get_by_id(broken.id)
    assert broken.state == "rejected" and "simulated bug in results" in broken.error
    assert audit.verify().ok
