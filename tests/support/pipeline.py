"""The worker's path of a file, run in the test process: inbox → take → ledger → ingest → rows.

No subprocess and no observer: the test decides when a file is taken and when it is ingested,
through the same functions the watcher and the consumer call (worker.intake.watcher.take_many,
worker.consume.ingest.process_many), on a real SQLite database and raw store in tmp_path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peewee import Database

from worker.consume import ingest
from worker.intake import watcher
from worker.record import db, ledger
from worker.record.models import SourceFile
from worker.settings import Settings


@dataclass
class Pipeline:
    settings: Settings
    database: Database
    owner: str = ledger.owner_id("test")

    @classmethod
    def open(cls, root: Path, **settings: Any) -> Pipeline:
        """Settings under ``root`` (inbox/, data/) and their database, migrated.

        Files are disposed of at once (``dispose_settle_seconds = 0``): the test writes them
        whole before taking them.
        """
        values: dict[str, Any] = {"dispose_settle_seconds": 0, **settings}
        s = Settings(inbox=root / "inbox", data_dir=root / "data", **values)
        s.inbox.mkdir(parents=True, exist_ok=True)
        return cls(s, db.open_database(s))

    def close(self) -> None:
        self.database.close()

    def drop(self, name: str, data: bytes | str) -> Path:
        """Write a complete file into the inbox."""
        path = self.settings.inbox / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode("utf-8")
        path.write_bytes(data)
        return path

    def take(self, *names: str) -> list[SourceFile]:
        """Take these inbox files as the watcher does once they are stable; their ledger rows
        (a duplicate's row is its first copy's)."""
        batch = []
        for name in names:
            st = (self.settings.inbox / name).stat()
            batch.append((self.settings.inbox / name, name,
                          watcher.Candidate(st.st_size, st.st_mtime_ns, 0, 0)))
        rows = []
        for name, outcome in zip(names, watcher.take_many(self.settings, batch, self.owner),
                                 strict=True):
            assert isinstance(outcome, tuple), f"{name} was not taken: {outcome!r}"
            rows.append(outcome[0])
        return rows

    def ingest(self, rows: list[SourceFile]) -> dict[int, str]:
        """The consumer's task body for these rows: their final states, by id."""
        return ingest.process_many(self.settings, [r.id for r in rows], self.owner)

    def ingest_watched(self, rows: list[SourceFile]) -> tuple[dict[int, str], list[str]]:
        """``ingest``, and the text of every statement it ran, in order."""
        seen: list[str] = []
        run = self.database.execute_sql

        def counting(text: str, params: object = None, *args: object) -> object:
            seen.append(text)
            return run(text, params, *args)

        self.database.execute_sql = counting  # type: ignore[method-assign]
        try:
            return self.ingest(rows), seen
        finally:
            del self.database.execute_sql

    def run(self, name: str, data: bytes | str) -> SourceFile:
        """Drop, take and ingest one file; its ledger row as it ended."""
        self.drop(name, data)
        [row] = self.take(name)
        self.ingest([row])
        return SourceFile.get_by_id(row.id)
