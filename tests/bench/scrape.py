"""How long one ``/metrics`` scrape takes against a large ledger.

``python -m tests.bench.scrape [ROWS]`` fills a real SQLite database with ROWS ledger rows
(default 500,000: mostly ingested, some rejected, a small backlog, a few canary files) and their
counters, then times scrapes of the real collector and prints the median and the worst.
"""

from __future__ import annotations

import hashlib
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from worker.record import counters, db, sql
from worker.record.canaries import CANARY_PREFIX
from worker.record.models import INGESTED, QUEUED, REJECTED, SourceFile, database, utcnow
from worker.runtime import metrics
from worker.runtime.health import Probe
from worker.settings import Settings

COLUMNS = ("sha256", "path", "name", "origin", "size", "mtime_ns", "first_seen", "state",
           "attempts", "lease_until", "disposed", "format", "error", "error_line", "finished_at")


def fill(rows: int) -> None:
    now = utcnow()
    amounts: Counter[tuple[str, str]] = Counter()
    batch = []
    for i in range(rows):
        state = QUEUED if i % 5000 == 0 else REJECTED if i % 50 == 0 else INGESTED
        path = f"{CANARY_PREFIX}c{i}.csv" if i % 10000 == 1 else f"lab/run{i // 100}/S{i}.csv"
        error = "Area: expected a number" if state == REJECTED else None
        batch.append((hashlib.sha256(str(i).encode()).hexdigest(), path, path.rsplit("/", 1)[1],
                      "node", 4000, 0, now - timedelta(seconds=30), state, 0, 0,
                      state != QUEUED, "chemstation_csv", error, 12 if error else None,
                      now if state != QUEUED else None))
        if state == INGESTED:
            amounts[(counters.INGESTED, "chemstation_csv")] += 1
        elif state == REJECTED:
            amounts[(counters.REJECTED, "chemstation_csv")] += 1
        if len(batch) == 10000:
            with database.atomic():
                sql.insert(SourceFile, COLUMNS, batch)
            batch = []
    with database.atomic():
        sql.insert(SourceFile, COLUMNS, batch)
        counters.add(amounts)
        for name in (counters.LAST_INGEST, counters.CANARY_LAST_INGEST):
            sql.execute(counters.SET_SQL, (name, "", time.time()))


def main(argv: list[str]) -> int:
    rows = int(argv[0]) if argv else 500_000
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(inbox=Path(tmp) / "inbox", data_dir=Path(tmp) / "data")
        settings.inbox.mkdir()
        db.open_database(settings)
        started = time.perf_counter()
        fill(rows)
        print(f"filled {rows:,} ledger rows in {time.perf_counter() - started:.1f} s")
        registry = metrics.registry_for(Probe(settings))
        metrics.render(registry)  # the first read warms the page cache, as any later scrape has
        times = []
        for _ in range(20):
            started = time.perf_counter()
            metrics.render(registry)
            times.append((time.perf_counter() - started) * 1000)
        print(f"/metrics scrape at {rows:,} rows: median {statistics.median(times):.1f} ms, "
              f"worst {max(times):.1f} ms (20 scrapes)")
        database.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
