"""``GET /metrics``: Prometheus text read from the ledger at scrape time.

A custom collector instead of counters kept in memory: every number is a query of the ledger,
so it matches the database exactly, survives restarts, and is the same whichever process of a
scaled-out installation is scraped. Canary files are left out of the file metrics and reported
by their own ``accu_ingest_canary_*`` series.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from worker import __version__
from worker.record.canaries import CANARY_PREFIX, last_success, not_canary_file
from worker.record.db import is_postgres
from worker.record.models import INGESTED, REJECTED, SourceFile, database, utcnow
from worker.runtime.health import Probe, counts, last_ingest, oldest_backlog

# Seconds from first seen to finished; files wait at least the stability window and the gate.
LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600)

# A rejection reason (free text from the parsers and the watcher) → a small, stable label set.
REASON_CATEGORIES = (
    ("too_large", ("max_file_mb",)),
    ("unrecognised_format", ("unrecognised format", "no parser")),
    ("incomplete", ("cut off", "incomplete", "truncated", "ends without")),
    ("too_many_attempts", ("attempts",)),
)


def reason_category(error: str | None, line: int | None) -> str:
    """``parse_error`` for a reason that names a line, else ``other``, unless a pattern matches."""
    text = (error or "").lower()
    for category, needles in REASON_CATEGORIES:
        if any(n in text for n in needles):
            return category
    return "parse_error" if line is not None else "other"


def _epoch(value: datetime | None) -> float:
    """Seconds since the epoch for a naive-UTC datetime; 0 for never (Prometheus convention)."""
    return 0.0 if value is None else value.replace(tzinfo=UTC).timestamp()


class LedgerCollector(Collector):
    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    def collect(self) -> Iterator[Metric]:
        yield _gauge("accu_ingest_info", "Version of the worker answering", 1.0,
                     {"version": __version__, "role": self.probe.role})

        files = GaugeMetricFamily("accu_ingest_files", "Files in the ledger by state "
                                  "(canaries excluded)", labels=["state"])
        by_state = counts()
        for state, n in by_state.items():
            files.add_metric([state], n)
        yield files

        yield _latency_histogram()

        rejections = CounterMetricFamily("accu_ingest_rejections",
                                         "Rejected files by reason category", labels=["reason"])
        by_reason = dict.fromkeys(sorted({c for c, _ in REASON_CATEGORIES}
                                         | {"parse_error", "other"}), 0)
        for row in (SourceFile.select(SourceFile.error, SourceFile.error_line)
                    .where(SourceFile.state == REJECTED, not_canary_file())):
            by_reason[reason_category(row.error, row.error_line)] += 1
        for reason, n in by_reason.items():
            rejections.add_metric([reason], n)
        yield rejections

        yield _gauge("accu_ingest_backlog_files", "Files registered but not yet final",
                     by_state["queued"] + by_state["processing"])
        oldest = oldest_backlog()
        yield _gauge("accu_ingest_oldest_backlog_age_seconds",
                     "Age of the oldest unfinished file (0 when none)",
                     0.0 if oldest is None else (utcnow() - oldest).total_seconds())
        if self.probe.queue is not None:
            try:
                depth = float(self.probe.queue.depth())
            except Exception:
                depth = float("nan")
            yield _gauge("accu_ingest_queue_depth", "Tasks waiting in the queue", depth)
        yield _gauge("accu_ingest_last_success_timestamp_seconds",
                     "When a file was last ingested (0 = never)", _epoch(last_ingest()))
        if self.probe.observer_alive is not None:
            yield _gauge("accu_ingest_observer_alive", "1 while the file observer runs",
                         1.0 if self.probe.observer_alive() else 0.0)
        if self.probe.intake is not None:
            intake = self.probe.intake()
            yield _gauge("accu_ingest_intake_candidates",
                         "Files in the inbox the watcher is waiting on to be complete",
                         float(intake["candidates"]))
            yield _gauge("accu_ingest_intake_waiting",
                         "1 while more files wait in the inbox for room in the backlog "
                         "(intake_max_backlog)", 1.0 if intake["waiting"] else 0.0)
            yield _gauge("accu_ingest_intake_unreadable",
                         "Complete files in the inbox the watcher cannot read (permissions)",
                         float(intake["unreadable"]))
            yield _gauge("accu_ingest_intake_unregistered",
                         "Files in the inbox whose ledger row could not be written",
                         float(intake["unregistered"]))
        yield _gauge("accu_ingest_canary_last_success_timestamp_seconds",
                     "When a canary last came through the whole pipeline (0 = never)",
                     _epoch(last_success()))
        if self.probe.canary is not None:
            yield _gauge("accu_ingest_canary_ok", "1 unless the last canary check failed",
                         0.0 if self.probe.canary.problem else 1.0)


def _gauge(name: str, doc: str, value: float,
           labels: dict[str, str] | None = None) -> GaugeMetricFamily:
    metric = GaugeMetricFamily(name, doc, labels=list(labels) if labels else None)
    if labels:
        metric.add_metric(list(labels.values()), value)
    else:
        metric.add_metric([], value)
    return metric


def _latency_histogram() -> HistogramMetricFamily:
    """First seen → finished for ingested files, bucketed by the database in one query."""
    table = SourceFile._meta.table_name
    if is_postgres(database.obj):
        latency = "EXTRACT(EPOCH FROM (finished_at - first_seen))"
    else:
        latency = "(julianday(finished_at) - julianday(first_seen)) * 86400.0"
    buckets = ", ".join(f"SUM(CASE WHEN {latency} <= {le} THEN 1 ELSE 0 END)"
                        for le in LATENCY_BUCKETS)
    p = database.obj.param
    sql = (f"SELECT COUNT(*), SUM({latency}), {buckets} FROM {table} WHERE state = {p} "
           f"AND finished_at IS NOT NULL AND SUBSTR(path, 1, {len(CANARY_PREFIX)}) <> {p}")
    row = database.obj.execute_sql(sql, (INGESTED, CANARY_PREFIX)).fetchone()
    total, seconds = int(row[0] or 0), float(row[1] or 0.0)
    cumulative = [(_le(le), int(n or 0)) for le, n in zip(LATENCY_BUCKETS, row[2:], strict=True)]
    return HistogramMetricFamily(
        "accu_ingest_latency_seconds", "Seconds from first seen to ingested",
        buckets=[*cumulative, ("+Inf", total)], sum_value=seconds)


def _le(bound: float) -> str:
    return str(float(bound))


def registry_for(probe: Probe) -> CollectorRegistry:
    """The ledger metrics plus the process's own (memory, CPU, open files where the OS tells)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(probe))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition for one scrape."""
    return generate_latest(registry)
