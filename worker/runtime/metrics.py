"""``GET /metrics``: Prometheus text read from the database at scrape time.

A custom collector instead of counters kept in memory: the ``_total`` counters are the
``event_count`` rows the ledger bumps with each event (record/counters.py), so they only go up,
survive restarts and are the same whichever process of a scaled-out installation is scraped;
gauges are queries that an index answers, so a scrape does not grow with the ledger. Canary
files are left out of the file metrics and reported by their own ``accu_ingest_canary_*``
series. Consumer restarts are counted by the process that supervises them.
"""

from __future__ import annotations

from collections.abc import Iterator

from peewee import fn
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
from worker.consume import blocked
from worker.record import counters
from worker.record.canaries import not_canary_file
from worker.record.counters import LATENCY_BUCKETS, REASONS, reason_category
from worker.record.models import (
    INGESTED,
    PROCESSING,
    QUEUED,
    REJECTED,
    STATES,
    SourceFile,
    utcnow,
)
from worker.runtime import scrub
from worker.runtime.health import Probe, oldest_backlog

__all__ = ["reason_category", "registry_for", "render"]

class LedgerCollector(Collector):
    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    def collect(self) -> Iterator[Metric]:
        yield _gauge("accu_ingest_info", "Version of the worker answering", 1.0,
                     {"version": __version__, "role": self.probe.role})

        files = GaugeMetricFamily("accu_ingest_files", "Files in the ledger by state "
                                  "(canaries excluded)", labels=["state"])
        counted = counters.read()
        by_state = counts_by_state(counted)
        for state, n in by_state.items():
            files.add_metric([state], n)
        yield files

        yield from _counters(counted)
        yield _latency_histogram(counted)

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
                     "When a file was last ingested (0 = never)",
                     counted.get(counters.LAST_INGEST, {}).get("", 0.0))
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
            yield _gauge("accu_ingest_intake_special_files",
                         "Links, pipes, sockets and devices in the inbox (never read)",
                         float(intake["special_files"]))
            yield _gauge("accu_ingest_disposal_blocked_files",
                         "Final files that cannot leave the inbox: a folder refuses them",
                         float(blocked.waiting()))
        yield _gauge("accu_ingest_canary_last_success_timestamp_seconds",
                     "When a canary last came through the whole pipeline (0 = never)",
                     counted.get(counters.CANARY_LAST_INGEST, {}).get("", 0.0))
        if self.probe.consumers is not None:
            restarts = CounterMetricFamily("accu_ingest_consumer_restarts",
                                           "Consumer processes started again after they ended "
                                           "(since this process started)")
            restarts.add_metric([], float(self.probe.consumers()["restarts"]))
            yield restarts
        yield from _scrub(counted)
        if self.probe.deliver is not None:
            yield from _deliver_counters(self.probe.deliver())
        if self.probe.canary is not None:
            yield _gauge("accu_ingest_canary_ok", "1 unless the last canary check failed",
                         0.0 if self.probe.canary.problem else 1.0)


def _scrub(counted: dict[str, dict[str, float]]) -> Iterator[Metric]:
    """The last scrub pass, from the database: the same whichever process is scraped."""
    yield _gauge("accu_ingest_scrub_last_pass_timestamp_seconds",
                 "When the scrub last re-hashed the whole raw store (0 = never)",
                 counted.get(scrub.LAST_PASS, {}).get("", 0.0))
    yield _gauge("accu_ingest_scrub_problems",
                 "Raw files the last scrub found missing or not matching their SHA-256",
                 counted.get(scrub.PROBLEMS, {}).get("", 0.0))
    yield _gauge("accu_ingest_scrub_checked_files", "Raw files the last scrub re-hashed",
                 counted.get(scrub.CHECKED_FILES, {}).get("", 0.0))
    pruned = GaugeMetricFamily("accu_ingest_scrub_pruned",
                               "What the last scrub's retention deleted", labels=["what"])
    for what in ("processed", "orphan_packs", "canary"):
        pruned.add_metric([what], counted.get(scrub.PRUNED, {}).get(what, 0.0))
    yield pruned


def _deliver_counters(counts: dict[str, dict[str, int]]) -> Iterator[Metric]:
    """Kept by the notifier in data/reports/state.json (views do not write the database)."""
    for name, metric, doc, label in (
            ("notify_sent", "accu_ingest_notify_sent", "Notifications a target took", "target"),
            ("notify_failures", "accu_ingest_notify_failures",
             "Attempts to notify a target that failed (each is retried)", "target"),
            ("notify_dropped", "accu_ingest_notify_dropped",
             "Notifications dropped while a target stayed down", "target"),
            ("job_reports", "accu_ingest_job_reports",
             "Job reports written, posted, refused, or whose post failed", "outcome")):
        family = CounterMetricFamily(metric, doc, labels=[label])
        for value, n in sorted(counts.get(name, {}).items()):
            family.add_metric([value], float(n))
        yield family


def _gauge(name: str, doc: str, value: float,
           labels: dict[str, str] | None = None) -> GaugeMetricFamily:
    metric = GaugeMetricFamily(name, doc, labels=list(labels) if labels else None)
    if labels:
        metric.add_metric(list(labels.values()), value)
    else:
        metric.add_metric([], value)
    return metric


def counts_by_state(counted: dict[str, dict[str, float]]) -> dict[str, int]:
    """Real files by state. Final states from the counters (ingested is for good; rejected
    until retried), the backlog from the state index: counting every row, even on an index,
    made a scrape grow with the ledger."""
    by_state = dict.fromkeys(STATES, 0)
    by_state[INGESTED] = int(sum(counted.get(counters.INGESTED, {}).values()))
    by_state[REJECTED] = int(sum(counted.get(counters.REJECTED, {}).values())
                             - counted.get(counters.RETRIED, {}).get("", 0.0))
    query = (SourceFile.select(SourceFile.state, fn.COUNT(SourceFile.id).alias("n"))
             .where(SourceFile.state.in_([QUEUED, PROCESSING]), not_canary_file())
             .group_by(SourceFile.state))
    by_state.update({r.state: r.n for r in query})
    return by_state


def _counters(counted: dict[str, dict[str, float]]) -> Iterator[Metric]:
    outcomes = CounterMetricFamily("accu_ingest_files_outcome",
                                   "Files that reached an outcome, by outcome and format",
                                   labels=["outcome", "format"])
    for outcome in (counters.INGESTED, counters.REJECTED):
        for fmt, n in sorted(counted.get(outcome, {}).items()):
            outcomes.add_metric([outcome, fmt], n)
    yield outcomes
    rejections = CounterMetricFamily("accu_ingest_rejections",
                                     "Rejected files by reason category", labels=["reason"])
    by_reason = counted.get(counters.REJECTED_REASON, {})
    for reason in REASONS:
        rejections.add_metric([reason], by_reason.get(reason, 0.0))
    yield rejections
    for name, metric, doc in (
            (counters.DUPLICATE, "accu_ingest_duplicates",
             "Files whose content was already in the ledger (another copy)"),
            (counters.STORED_BYTES, "accu_ingest_stored_bytes", "Bytes of new files stored"),
            (counters.RETRIED, "accu_ingest_retries", "Rejected files an operator retried")):
        family = CounterMetricFamily(metric, doc)
        family.add_metric([], counted.get(name, {}).get("", 0.0))
        yield family


def _latency_histogram(counted: dict[str, dict[str, float]]) -> HistogramMetricFamily:
    """First seen → ingested, bucketed by the ledger as each file was ingested."""
    buckets = counted.get(counters.LATENCY_BUCKET, {})
    total = sum(counted.get(counters.INGESTED, {}).values())
    cumulative = [(_le(le), buckets.get(_le(le), 0.0)) for le in LATENCY_BUCKETS]
    return HistogramMetricFamily(
        "accu_ingest_latency_seconds", "Seconds from first seen to ingested",
        buckets=[*cumulative, ("+Inf", total)],
        sum_value=counted.get(counters.LATENCY_SUM, {}).get("", 0.0))


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
