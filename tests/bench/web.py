"""The pages and API under load: response times at 100,000 files, and ingest throughput while a
client polls ``/api/files`` every second.

The large database is filled directly (ledger rows, jobs, samples, injections, peaks, results
and audit events, as the worker writes them), then served by the real worker, which times each
page over HTTP as a browser would fetch it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

from worker.record import db, sql
from worker.record.models import (
    INGESTED,
    REJECTED,
    AuditEvent,
    Injection,
    Job,
    Peak,
    Result,
    Sample,
    SourceFile,
    database,
    utcnow,
)
from worker.settings import Settings

from .scenarios import Bench, measure_burst
from .table import Row, at_least, below, percentile
from .workerproc import Worker
from .workload import REPO

PAGE_TARGET_MS = 200.0
CLI_TARGET_S = 1.0
POLL_TARGET = 0.95
POLL_ROUNDS = 6  # pairs of bursts, one with a poller and one without
REQUESTS = 20  # per page, after one to warm the cache
EVENTS = ("detected", "stable", "stored", "queued", "parsing")


def fill(data_dir: Path, n: int) -> None:
    """A database of ``n`` files as a lab's would be after years: 100 files a job, every
    ingested file a sample with one injection, three peaks and a purity result, and each file's
    audit events."""
    settings = Settings(inbox=data_dir.parent / "inbox", data_dir=data_dir)
    db.open_database(settings)
    now = utcnow()
    jobs = max(1, n // 100)
    with database.atomic():
        sql.insert(Job, ("key", "name", "created_at"),
                   [(f"node:lab/run{j}", f"run{j}", now) for j in range(jobs)])
    seq = 0
    for start in range(0, n, 10_000):
        stop = min(n, start + 10_000)
        files, samples, injections, peaks, results, events = [], [], [], [], [], []
        for i in range(start, stop):
            file_id = i + 1
            # Nothing left queued: the worker would take it, and fail, for want of its bytes.
            state = REJECTED if i % 50 == 0 else INGESTED
            sha = hashlib.sha256(str(i).encode()).hexdigest()
            path = f"lab/run{i // 100}/S{i}_Report.csv"
            seen = now - timedelta(seconds=(n - i) * 3)
            files.append((file_id, sha, path, path.rsplit("/", 1)[1], "node", 4000, 0, seen,
                          state, 1, 0, True, "agilent-openlab-csv",
                          "line 12: Area: expected a number" if state == REJECTED else None,
                          (i // 100) + 1 if state == INGESTED else None,
                          seen + timedelta(seconds=1)))
            if state == INGESTED:
                samples.append((file_id, (i // 100) + 1, f"S{i}", "sample", "", "sample"))
                injections.append((file_id, file_id, file_id, 1, False))
                peaks += [(file_id, "Signal A", k + 1, 1.0 + k, 100.0 * (3 - k),
                           [60.0, 30.0, 10.0][k]) for k in range(3)]
                results.append(((i // 100) + 1, file_id, "", "purity", 60.0, "%", "{}", "[]",
                                "[]", "1", seen, False))
            for event in (*EVENTS, state):
                seq += 1
                events.append((seq, seen.isoformat(), "bench", 1, "0", event, sha, file_id,
                               json.dumps({"path": path}), f"{seq - 1:064x}", f"{seq:064x}"))
        with database.atomic():
            sql.insert(SourceFile, ("id", "sha256", "path", "name", "origin", "size",
                                    "mtime_ns", "first_seen", "state", "attempts",
                                    "lease_until", "disposed", "format", "error", "job_id",
                                    "finished_at"), files)
            sql.insert(Sample, ("id", "job_id", "sample_id", "kind", "analyte", "identity"),
                       samples)
            sql.insert(Injection, ("id", "sample_id", "source_file_id", "number", "superseded"),
                       injections)
            sql.insert(Peak, ("injection_id", "signal", "number", "rt_min", "area", "area_pct"),
                       peaks)
            sql.insert(Result, ("job_id", "sample_id", "analyte", "kind", "value", "unit",
                                "inputs", "trace", "flags", "calc_version", "computed_at",
                                "superseded"), results)
            sql.insert(AuditEvent, ("seq", "at", "host", "pid", "version", "event", "sha256",
                                    "source_file_id", "details", "prev_hash", "hash"), events)
    database.close()


def _get(port: int, path: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        r.read()
        assert r.status == 200, path
    return (time.perf_counter() - started) * 1000.0


def web_pages(bench: Bench) -> list[Row]:
    n = bench.sizes.web_files
    section = f"Web pages and API: {n:,} files in the database"
    bench.log(f"web: filling a database with {n:,} files")
    w = bench.worker("web")
    fill(w.data, n)
    mid = n // 2 + 2  # an ingested file (not a multiple of 50)
    pages = [  # (what, path, judged against the target)
        ("overview /", "/", True),
        ("files, first page", "/files", True),
        ("files, a page deep in the ledger", f"/files?cursor={mid}", True),
        ("files, state=rejected", "/files?state=rejected", True),
        ("files, name filter", f"/files?name=S{mid}_", True),
        ("one file's page", f"/files/{mid}", True),
        ("jobs", "/jobs", True),
        ("one job", f"/jobs/{mid // 100 + 1}", False),
        ("one injection", f"/injections/{mid}", False),
        ("audit trail", "/audit", True),
        ("API /api/files", "/api/files", True),
        ("API /api/files/{id}", f"/api/files/{mid}", True),
    ]
    rows = []
    try:
        w.start()
        w.wait_ready()
        for what, path, judged in pages:
            _get(w.port, path)
            times = [_get(w.port, path) for _ in range(REQUESTS)]
            p95 = percentile(times, 95)
            rows.append(Row(section, f"{what} p95", p95, "ms",
                            f"< {PAGE_TARGET_MS:.0f} ms" if judged else "",
                            below(p95, PAGE_TARGET_MS) if judged else None,
                            f"p50 {statistics.median(times):.1f} ms; {path}"))
    finally:
        w.stop()
    for what, args in (("results (its default --limit 1,000)", ["results"]),
                       ("results --job", ["results", "--job", f"run{mid // 100}"]),
                       ("results --sample", ["results", "--sample", f"S{mid}"]),
                       ("results --since --limit 100", ["results", "--since",
                                                        "2000-01-01", "--limit", "100"]),
                       ("show ID", ["show", str(mid)]), ("jobs", ["jobs"])):
        times = [_cli(w, args) for _ in range(3)]
        worst = max(times)
        rows.append(Row(section, f"accu-ingest {what}, wall", worst, "s", f"< {CLI_TARGET_S:g} s",
                        below(worst, CLI_TARGET_S),
                        "worst of 3, Python's start included"))
    return rows


def _cli(w: Worker, args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "worker", *args, "--config", str(w.config)],
                   check=True, capture_output=True, cwd=REPO, timeout=120)
    return time.perf_counter() - started


def _poller(port: int, stop: threading.Event, answered: list[float]) -> None:
    while not stop.wait(1.0):
        with contextlib.suppress(OSError):  # a slow answer is measured, a refused one not
            answered.append(_get(port, "/api/files"))


def web_polling(bench: Bench) -> list[Row]:
    """Bursts with and without a poller, in pairs whose order alternates: the machine's speed
    drifts over a run, and a poller always second in its pair would be charged the drift. The
    ratio is the median of the pairs' own ratios."""
    n = bench.sizes.poll_burst
    section = f"Ingest while a client polls /api/files every second: {n:,}-file bursts"
    rates: dict[bool, list[float]] = {False: [], True: []}
    answered: list[float] = []
    for round_ in range(POLL_ROUNDS):
        for polled in (False, True) if round_ % 2 == 0 else (True, False):
            bench.log(f"web polling: burst {round_ + 1} {'with' if polled else 'without'} "
                      "a poller")
            _, folders = bench.stage(f"poll-staging-{round_}-{polled}", n)
            w = bench.worker(f"poll-{round_}-{polled}")
            stop = threading.Event()
            try:
                w.start()
                w.wait_ready()
                time.sleep(bench.idle_seconds)
                thread = threading.Thread(target=_poller, args=(w.port, stop, answered))
                if polled:
                    thread.start()
                rates[polled].append(measure_burst(w, folders).files_per_s)
            finally:
                stop.set()
                if polled:
                    thread.join()
                w.stop()
    pairs = [p / q for p, q in zip(rates[True], rates[False], strict=True)]
    ratio = statistics.median(pairs)
    return [
        Row(section, f"without a poller (median of {POLL_ROUNDS})",
            statistics.median(rates[False]), "files/s"),
        Row(section, f"with /api/files polled every second (median of {POLL_ROUNDS})",
            statistics.median(rates[True]), "files/s",
            note=f"{len(answered)} polls answered, p95 {percentile(answered, 95) or 0:.0f} ms"),
        Row(section, "polled / not polled (median of the pairs)", ratio, "×",
            f"≥ {POLL_TARGET:.2f}×", at_least(ratio, POLL_TARGET),
            "pairs " + " ".join(f"{p:.2f}" for p in pairs)),
    ]
