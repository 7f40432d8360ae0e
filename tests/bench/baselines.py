"""What end to end is compared with, in the same run: the parser alone, and the storage floor.

The storage floor writes the very rows the worker derived from the burst (SourceFile, Job,
Sample, Injection, Peak, Result, read back from its database) in ONE peewee transaction into a
fresh SQLite database opened by the worker's own ``open_database`` (same schema, WAL,
synchronous=FULL). It has no audit events, no raw store and no queue: it is the least a durable
SQLite write of those rows can cost.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from worker import parsers

from .workload import Export

BATCH = 200  # rows per INSERT, as the worker batches its peaks
FLOOR_TABLES = ("job", "source_file", "sample", "injection", "peak", "result")  # FK order


def parser_files_per_s(exports: Sequence[Export]) -> float:
    """worker.parsers.parse (sniffing included) on every file's bytes, in this process."""
    parsers.parse(exports[0].data, exports[0].name)  # entry points loaded outside the clock
    started = time.perf_counter()
    for export in exports:
        parsers.parse(export.data, export.name)
    return len(exports) / (time.perf_counter() - started)


def worker_rows(database: Path) -> dict[str, list[dict[str, Any]]]:
    """Every row of the floor's tables in a (stopped) worker's database, by column name."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return {t: [dict(r) for r in conn.execute(f"SELECT * FROM {t} ORDER BY id")]
                for t in FLOOR_TABLES}
    finally:
        conn.close()


def storage_floor_files_per_s(rows: dict[str, list[dict[str, Any]]], folder: Path) -> float:
    """Files/s writing ``rows`` in one batched transaction into a fresh database."""
    from worker.record import db
    from worker.record.models import Injection, Job, Peak, Result, Sample, SourceFile, database
    from worker.settings import Settings

    models = {"job": Job, "source_file": SourceFile, "sample": Sample, "injection": Injection,
              "peak": Peak, "result": Result}
    opened = db.open_database(Settings(data_dir=folder, inbox=folder / "inbox"))
    try:
        started = time.perf_counter()
        with database.atomic():
            for table in FLOOR_TABLES:
                for i in range(0, len(rows[table]), BATCH):
                    models[table].insert_many(rows[table][i:i + BATCH]).execute()
        elapsed = time.perf_counter() - started
    finally:
        opened.close()
    return len(rows["source_file"]) / elapsed
