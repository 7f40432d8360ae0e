"""The files of an instrument folder that wait for its writer are given back together.

A ``.D`` folder's files are taken with it, and until the file that writes its injection is
final the others wait (``dfolder.NotYet``): each is given back to the ledger to be tried again.
One by one, each was a write transaction of its own (the database's write lock taken, and a
sync to disk, per file); a chunk's waiting files now go back in one.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.pipeline import Pipeline

from worker.record import ledger
from worker.record.models import QUEUED, SourceFile, database

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "agilent-chemstation-folders"


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

        transactions: list[object] = []  # the transaction each give-back ran in
        real = ledger.release

        def release(row: SourceFile, owner: str, retry_in: float) -> None:
            transactions.append(database.transaction_depth() and database.top_transaction())
            real(row, owner, retry_in)

        monkeypatch.setattr(ledger, "release", release)
        finished = pipeline.ingest([SourceFile.get_by_id(i) for i in ids])

        assert len(finished) == 1  # its writer; the others wait for it
        assert len(transactions) == len(ids) - 1
        assert all(transactions) and len({id(t) for t in transactions}) == 1
        waiting = SourceFile.select().where(SourceFile.id.in_(ids), SourceFile.state == QUEUED)
        assert waiting.count() == len(ids) - 1  # given back, to be tried again
    finally:
        pipeline.close()
