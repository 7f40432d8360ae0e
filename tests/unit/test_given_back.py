"""A chunk's files that are to be tried again later are given back to the ledger together.

A ``.D`` folder's files are taken with it, and until the file that writes its injection is
final the others wait (``dfolder.NotYet``); a chunk whose transaction fails for a passing
reason (the database busy) fails for all its files. One by one, each give-back was a write
transaction of its own (the database's write lock taken, and a sync to disk, per file).
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from peewee import OperationalError
from support.pipeline import Pipeline
from support.reports import random_peaks, report

from worker.consume import ingest
from worker.record import ledger
from worker.record.models import QUEUED, SourceFile, database

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "agilent-chemstation-folders"


def _watch_give_backs(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The transaction each give-back (``ledger.release``) runs in, as they happen."""
    transactions: list[object] = []
    real = ledger.release

    def release(row: SourceFile, owner: str, retry_in: float) -> None:
        transactions.append(database.transaction_depth() and database.top_transaction())
        real(row, owner, retry_in)

    monkeypatch.setattr(ledger, "release", release)
    return transactions


def test_a_folders_waiting_files_are_given_back_in_one_transaction(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = sorted(p for p in CORPUS.iterdir() if p.is_dir())[0]
    pipeline = Pipeline.open(tmp_path)
    try:
        shutil.copytree(folder, pipeline.settings.inbox / "seq" / folder.name)
        names = [f"seq/{p.relative_to(CORPUS).as_posix()}" for p in sorted(folder.rglob("*"))
                 if p.is_file()]
        rows = pipeline.take(*names)
        ids = list(dict.fromkeys(r.id for r in rows))

        transactions = _watch_give_backs(monkeypatch)
        finished = pipeline.ingest([SourceFile.get_by_id(i) for i in ids])

        assert len(finished) == 1  # its writer; the others wait for it
        assert len(transactions) == len(ids) - 1
        assert all(transactions) and len({id(t) for t in transactions}) == 1
        waiting = SourceFile.select().where(SourceFile.id.in_(ids), SourceFile.state == QUEUED)
        assert waiting.count() == len(ids) - 1  # given back, to be tried again
    finally:
        pipeline.close()


def test_a_chunk_the_database_refused_is_given_back_in_one_transaction(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = Pipeline.open(tmp_path)
    try:
        names = [f"run/S-{i}_Inj_1_Report.csv" for i in range(5)]
        for i, name in enumerate(names):
            pipeline.drop(name, report(random_peaks(random.Random(i))))
        rows = pipeline.take(*names)

        def busy(*_: Any) -> None:
            raise OperationalError("database is locked")

        monkeypatch.setattr(ingest, "commit_chunk", busy)
        transactions = _watch_give_backs(monkeypatch)
        assert pipeline.ingest(rows) == {}

        assert len(transactions) == len(rows)
        assert all(transactions) and len({id(t) for t in transactions}) == 1
        for row in SourceFile.select().where(SourceFile.id.in_([r.id for r in rows])):
            assert row.state == QUEUED and row.lease_until > time.time()  # after a backoff
    finally:
        pipeline.close()
