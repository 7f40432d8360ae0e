"""The measured scenarios: burst, single drops, catch-up, large traces, growth.

Each returns table rows. Times that matter come from the ledger (``finished_at``, set in the
transaction that commits the file's rows) against the moment the benchmark renamed the file
into the inbox, so polling granularity never enters a figure.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import baselines, floor, profile, workload
from .table import Row, at_least, at_most, below, percentile
from .workerproc import Ledger, Worker, drop, peak_rss_mb
from .workload import REPO, SEQUENCE_SIZE, Export, Workload

BURST_TARGET = 1000.0  # files/s
DURABLE_FLOOR_TARGET = 0.25  # end to end / the minimal durable floor
STORAGE_FLOOR_TARGET = 0.85  # end to end / the worker's own rows in one transaction
SCALEOUT_TARGET = 0.5  # scaled out / single node, same burst
SINGLE_P95_TARGET = 0.25  # s
RSS_TARGET = 200.0  # MB over 20,000 files
TRACE_TARGET = 60.0  # MB/s
TRACE_MEMORY_TARGET = 50.0  # MB over the interpreter, whatever the size
TRACE_ROUNDS_MB = 10  # a size is parsed max(3, this ÷ its MB) times and the best kept: one
# wall-clock parse swings with whatever else the machine runs
GROWTH_TARGET = 20.0  # % per-file cost, 1k -> 20k files in the database
RSS_TARGET_FILES = 20_000
CATCHUP_TARGET_FILES = 20_000  # the catch-up: 20,000 files already in the inbox
MB = 1_000_000
TRACES = "Large traces (DAD, time,value)"
SPECTRA = "DAD spectra (ChemStation .UV, real frames repeated)"
SPECTRA_RSS_TARGET = 500.0  # MB peak for a 100 MB .UV: bounded, not the decoded matrix


@dataclass(frozen=True)
class Sizes:
    burst: int = 2_000
    single: int = 30
    catchup: int = 2_000
    trace_mb: tuple[float, ...] = (1, 10, 50)
    e2e_trace_mb: float = 10
    spectra_mb: float = 100
    growth: tuple[int, int] = (1_000, 5_000)
    growth_burst: int = 500
    growth_rounds: int = 3  # bursts per size, taken in turn
    reports: int = 2_000
    scaleout: int = 2_000
    scaleout_consumers: tuple[int, ...] = (1, 2, 3)
    web_files: int = 100_000  # the database the pages are timed on (web.py)
    poll_burst: int = 2_000  # each burst ingested with and without a poller (web.py)
    sniff_mb: tuple[float, float] = (1, 50)  # detection on a small and a big trace
    big_table_rows: int = 1_000_000
    big_trace_mb: float = 400
    longest_trace_points: int = 1_499_999  # max_trace_points' default, less one
    counted_parses: int = 400  # copies each parser reads under valgrind (instructions.py)
    counted_commits: tuple[int, int] = (1_024, 512)  # files ingested first, files counted


DEFAULT = Sizes()
LONG = Sizes(burst=20_000, catchup=20_000, growth=(1_000, 20_000), growth_burst=2_000,
             reports=5_000)


def final_timeout(n: int) -> float:
    """Generous: a stalled worker fails the run, a slow one is measured."""
    return 180.0 + n * 0.5


@dataclass
class Bench:
    """Where a run works, what it generates, and what every worker it starts is given."""

    workdir: Path
    workload: Workload
    sizes: Sizes
    overrides: dict[str, Any] = field(default_factory=dict)  # worker settings (smoke test only)
    profile_to: Path | None = None
    idle_seconds: float = 1.0  # after ready: the start-up scan is over, the worker is idle
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True)
    _next_sequence: int = 1
    _next_report_folder: int = 1

    def folder(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def take_folders(self, n: int) -> int:
        """The first of the Report-only folder numbers for ``n`` more files (never reused)."""
        first = self._next_report_folder
        self._next_report_folder += math.ceil(n / workload.REPORT_FOLDER_SIZE)
        return first

    def exports(self, n: int) -> list[Export]:
        """``n`` files never generated before in this run (their own sequence numbers)."""
        first = self._next_sequence
        self._next_sequence += math.ceil(n / SEQUENCE_SIZE)
        return list(self.workload.exports(n, first))

    def stage(self, name: str, n: int,
              exports: list[Export] | None = None) -> tuple[list[Export], list[Path]]:
        staging = self.folder(name)
        exports = self.exports(n) if exports is None else exports
        return exports, [staging / f for f in workload.write(iter(exports), staging)]

    def durable_floor(self, name: str, exports: list[Export]) -> float:
        """floor.files_per_s on these exports, written afresh (its own copy of the files)."""
        _, folders = self.stage(f"{name}-files", 0, exports)
        rate = floor.files_per_s([p for f in folders for p in sorted(f.iterdir())],
                                 self.folder(f"{name}-db"))
        shutil.rmtree(self.folder(f"{name}-files"), ignore_errors=True)
        shutil.rmtree(self.folder(f"{name}-db"), ignore_errors=True)
        return rate

    def worker(self, name: str, data_dir: Path | None = None) -> Worker:
        return Worker(self.folder(name), data_dir=data_dir, overrides=self.overrides)


# Where a file's time goes, from the audit events the worker records for it.
STAGES = (("drop → queued", "drop", "queued", "stability gate, read, hash, fsync, register"),
          ("queued → parsing", "queued", "parsing", "waiting in the queue"),
          ("parsing → committed", "parsing", "committed", "parse, rows, results, commit"))


@dataclass(frozen=True)
class Burst:
    files: int
    rejected: int
    seconds: float  # first drop -> last commit
    steady_files_per_s: float | None  # first commit -> last commit
    latencies: list[float]
    stages: dict[str, list[float]]  # STAGES name -> per-file seconds

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds


def measure_burst(w: Worker, folders: list[Path], already_final: int = 0,
                  profiling: AbstractContextManager[None] | None = None) -> Burst:
    """Drop staged folders into the running worker at once; wait until every file is final."""
    n = sum(1 for f in folders for _ in f.iterdir())
    with profiling or nullcontext():
        dropped = drop(folders, w.inbox)
        w.wait_final(already_final + n, final_timeout(n))
    mine = [r for r in w.rows() if r.path.split("/", 1)[0] in dropped]
    drops = {r.path: dropped[r.path.split("/", 1)[0]] for r in mine}
    return burst_figures(mine, drops, w.stage_times(("queued", "parsing")))


def stage_seconds(rows: Sequence[Ledger], dropped: dict[str, float],
                  events: dict[str, dict[str, float]]) -> dict[str, list[float]]:
    """Per STAGES name, each committed file's seconds in that stage."""
    stages: dict[str, list[float]] = {name: [] for name, *_ in STAGES}
    for r in rows:
        if r.finished is None:
            continue
        marks = {**events.get(r.path, {}), "drop": dropped[r.path], "committed": r.finished}
        for name, start, end, _ in STAGES:
            if start in marks and end in marks:
                stages[name].append(marks[end] - marks[start])
    return stages


def burst_figures(rows: Sequence[Ledger], dropped: dict[str, float],
                  events: dict[str, dict[str, float]]) -> Burst:
    """Figures of a burst; ``dropped`` is each file's drop time by path."""
    ends = sorted(r.finished for r in rows if r.finished is not None)
    latencies = [r.finished - dropped[r.path] for r in rows if r.finished is not None]
    stages = stage_seconds(rows, dropped, events)
    steady = (len(ends) - 1) / (ends[-1] - ends[0]) if len(ends) > 1 and ends[-1] > ends[0] \
        else None
    return Burst(files=len(rows), rejected=sum(r.state == "rejected" for r in rows),
                 seconds=ends[-1] - min(dropped.values()), steady_files_per_s=steady,
                 latencies=latencies, stages=stages)


def burst(bench: Bench) -> list[Row]:
    n = bench.sizes.burst
    section = f"Burst: {n:,} files dropped at once into a running worker"
    bench.log(f"burst: generating {n} files")
    exports, folders = bench.stage("burst-staging", n)
    w = bench.worker("burst")
    try:
        w.start()
        w.wait_ready()
        time.sleep(bench.idle_seconds)
        profiling = (profile.recording(w.pid, bench.profile_to) if bench.profile_to else None)
        bench.log(f"burst: dropping {len(folders)} sequence folders"
                  f"{' (py-spy recording)' if profiling else ''}")
        cpu_before = w.cpu_seconds_parts()
        result = measure_burst(w, folders, profiling=profiling)
        cpu = [None if a is None or b is None else (b - a) * 1000.0 / n
               for a, b in zip(cpu_before, w.cpu_seconds_parts(), strict=False)]
        rss = w.peak_rss_mb()
        parts = w.peak_rss_parts_mb()
        counts = w.table_counts()
    finally:
        w.stop()
    bench.log(f"burst: {result.files_per_s:.1f} files/s; parser, storage and durable floors")
    parser_rate = baselines.parser_files_per_s(exports)
    floor_rate = baselines.storage_floor_files_per_s(baselines.worker_rows(w.database),
                                                     bench.folder("storage-floor"))
    durable = bench.durable_floor("durable-floor", exports)
    e2e = result.files_per_s
    rejected = f"{result.rejected} rejected!" if result.rejected else ""
    per_file = ", ".join(f"{t} {c / n:.3g}" for t, c in counts.items() if t != "source_file")
    rows = [
        Row(section, "end to end (drop → all committed)", e2e, "files/s", "≥ 1,000 files/s",
            at_least(e2e, BURST_TARGET), rejected),
        Row(section, "steady rate (first → last commit)", result.steady_files_per_s, "files/s",
            note="without the stability window and start of work"),
        Row(section, "drop → committed p50", percentile(result.latencies, 50), "s"),
        Row(section, "drop → committed p95", percentile(result.latencies, 95), "s"),
        Row(section, "drop → committed p99", percentile(result.latencies, 99), "s"),
    ]
    rows += [Row(section, f"  {name} p50", percentile(result.stages[name], 50), "s", note=what)
             for name, _, _, what in STAGES]
    rows += [
        _rss_row(section, n, rss, parts),
        *_cpu_rows(section, cpu),
        Row(section, "parser alone (in-process parsers.parse)", parser_rate, "files/s"),
        Row(section, "storage floor (same rows, one transaction)", floor_rate, "files/s",
            note=f"rows per file: {per_file}; audit events not in the floor"),
        durable_row(section, durable),
        Row(section, "end to end / parser alone", e2e / parser_rate, "×"),
        Row(section, "end to end / storage floor", e2e / floor_rate, "×", "≥ 0.85×",
            at_least(e2e / floor_rate, STORAGE_FLOOR_TARGET)),
        Row(section, "end to end / durable floor", e2e / durable, "×", "≥ 0.25×",
            at_least(e2e / durable, DURABLE_FLOOR_TARGET)),
    ]
    return rows


def durable_row(section: str, rate: float) -> Row:
    return Row(section, "durable floor (plain sqlite3, same files)", rate, "files/s",
               note=f"read, SHA-256, pack fsync'd per {floor.BATCH}; per batch one transaction "
                    f"(WAL, synchronous=FULL): per file a ledger row, an injection, "
                    f"{floor.PEAKS} peaks, {floor.RESULTS} results with a JSON trace, "
                    f"{floor.EVENTS} chained audit events")


def reports(bench: Bench) -> list[Row]:
    """A burst of Report-layout files only, REPORT_FOLDER_SIZE to a job folder, beside the
    durable floor on the same files."""
    n = bench.sizes.reports
    section = (f"Report-only: {n:,} Report files, {workload.REPORT_FOLDER_SIZE} to a job folder, "
               "dropped at once")
    bench.log(f"report-only: generating {n} files")
    exports = list(bench.workload.reports(n, bench.take_folders(n)))
    _, folders = bench.stage("reports-staging", n, exports)
    w = bench.worker("reports")
    try:
        w.start()
        w.wait_ready()
        time.sleep(bench.idle_seconds)
        result = measure_burst(w, folders)
    finally:
        w.stop()
    bench.log(f"report-only: {result.files_per_s:.1f} files/s; durable floor")
    durable = bench.durable_floor("reports-floor", exports)
    e2e = result.files_per_s
    return [
        Row(section, "end to end (drop → all committed)", e2e, "files/s",
            note=f"{result.rejected} rejected!" if result.rejected else ""),
        Row(section, "drop → committed p95", percentile(result.latencies, 95), "s"),
        durable_row(section, durable),
        Row(section, "end to end / durable floor", e2e / durable, "×", "≥ 0.25×",
            at_least(e2e / durable, DURABLE_FLOOR_TARGET)),
    ]


def _rss_row(section: str, n: int, rss: float | None, parts: list[float | None]) -> Row:
    judged = n >= RSS_TARGET_FILES
    return Row(section, "worker peak RSS (VmHWM)", rss, "MB", "< 200 MB",
               below(rss, RSS_TARGET) if judged and rss is not None else None,
               "; ".join(filter(None, [
                   "" if judged else f"target is over {RSS_TARGET_FILES:,} files (--long)",
                   "sum of each process's peak: run " + " + ".join(
                       f"{mb:.0f}" for mb in parts if mb is not None) + " (its consumers)"]))
               if rss is not None else "no /proc on this platform")


def _cpu_rows(section: str, per_process: list[float | None]) -> list[Row]:
    """The worker's CPU time per file, and the rate the machine's cores allow at that cost
    however well the processes share them: a ceiling that no change of the lock can lift."""
    known = [ms for ms in per_process if ms is not None]
    if not known:
        return []
    total = sum(known)
    cores = os.cpu_count() or 1
    return [
        Row(section, "worker CPU per file", total, "ms/file",
            note="user + system time during the burst: run " + " + ".join(
                f"{ms:.2f}" for ms in known) + " (its consumers)"),
        Row(section, "the cores allow at most, at that cost", cores * 1000.0 / total,
            "files/s", note=f"{cores} cores, all busy all the time"),
    ]


def single_drops(bench: Bench) -> list[Row]:
    """One file at a time into an idle worker, each committed before the next; then one large
    trace the same way, with what it does to the worker's peak RSS."""
    count = bench.sizes.single
    section = f"Single drops: {count} files, one at a time into an idle worker"
    exports = bench.exports(count)
    staging = bench.folder("single-staging")
    for e in exports:
        (staging / e.name).write_bytes(e.data)
    trace_mb = bench.sizes.e2e_trace_mb
    trace_name = "BENCH_Std_100.dx_DAD1A.CSV"
    trace_path = f"{exports[0].folder}/{trace_name}"
    (staging / trace_name).write_bytes(workload.trace(int(trace_mb * MB)))
    os.sync()
    w = bench.worker("single")
    for folder in {e.folder for e in exports}:
        (w.inbox / folder).mkdir()  # the run folder an instrument exports into exists already
    latencies: list[float] = []
    dropped: dict[str, float] = {}
    try:
        w.start()
        w.wait_ready()
        time.sleep(bench.idle_seconds)
        bench.log(f"single drops: {count} files")
        for e in exports:
            dropped[e.relpath], seconds = _drop_one(w, staging / e.name, e.folder, e.relpath)
            latencies.append(seconds)
            time.sleep(0.3)
        stages = stage_seconds([r for r in w.rows() if r.path in dropped], dropped,
                               w.stage_times(("queued", "parsing")))
        bench.log(f"single drops: a {trace_mb:g} MB trace")
        rss_before = w.peak_rss_mb()
        _, trace_seconds = _drop_one(w, staging / trace_name, exports[0].folder, trace_path)
        rss_after = w.peak_rss_mb()
        trace_row = w.finished(trace_path)
    finally:
        w.stop()
    notes = [] if trace_row is not None and trace_row.state == "ingested" else ["NOT ingested!"]
    if rss_before is not None and rss_after is not None:
        notes.append(f"worker peak RSS {rss_before:.0f} → {rss_after:.0f} MB")
    p95 = percentile(latencies, 95)
    return [
        Row(section, "drop → committed p50", percentile(latencies, 50), "s"),
        Row(section, "drop → committed p95", p95, "s", "≤ 0.25 s",
            at_most(p95, SINGLE_P95_TARGET)),
        Row(section, "drop → committed max", max(latencies), "s"),
        *[Row(section, f"  {name} p50", percentile(stages[name], 50), "s", note=what)
          for name, _, _, what in STAGES],
        Row(TRACES, f"{trace_mb:g} MB trace end to end (drop → committed)", trace_seconds, "s",
            note="; ".join(notes)),
    ]


def _drop_one(w: Worker, staged: Path, folder: str, relpath: str,
              timeout: float = 120.0) -> tuple[float, float]:
    """Rename one staged file into ``inbox/folder``; its drop time and seconds until its row
    committed."""
    dropped = time.time()
    os.rename(staged, w.inbox / folder / staged.name)
    deadline = time.monotonic() + timeout
    while (row := w.finished(relpath)) is None:
        w.check_running()
        if time.monotonic() > deadline:
            w.fail(f"{relpath} not final {timeout:.0f}s after its drop")
        time.sleep(0.01)
    assert row.finished is not None
    return dropped, row.finished - dropped


def catch_up(bench: Bench) -> list[Row]:
    n = bench.sizes.catchup
    section = f"Catch-up: {n:,} files already in the inbox when the worker starts"
    bench.log(f"catch-up: generating {n} files")
    w = bench.worker("catchup")
    exports = bench.exports(n)
    workload.write(iter(exports), w.inbox)
    try:
        started = w.start()
        bench.log("catch-up: worker started")
        w.wait_final(n, final_timeout(n))
        rows = w.rows()
        rss = w.peak_rss_mb()
        parts = w.peak_rss_parts_mb()
    finally:
        w.stop()
    seconds = max(r.finished for r in rows if r.finished is not None) - started
    target_s = n / BURST_TARGET
    rejected = sum(r.state == "rejected" for r in rows)
    # A short run is mostly the start itself and the stability window of the files found at
    # start (stable_seconds: they may still be being copied), so it is shown, not judged.
    judged = n >= CATCHUP_TARGET_FILES
    short = "" if judged else (f"target is over {CATCHUP_TARGET_FILES:,} files (--long); "
                               "a short run is mostly start-up and the stability window")
    return [
        Row(section, "start → all ingested", seconds, "s", f"≤ {target_s:,.3g} s (1,000 files/s)",
            at_most(seconds, target_s) if judged else None,
            "; ".join(filter(None, [f"{rejected} rejected!" if rejected else "", short]))),
        Row(section, "rate", n / seconds, "files/s", "≥ 1,000 files/s",
            at_least(n / seconds, BURST_TARGET) if judged else None),
        _rss_row(section, n, rss, parts),
    ]


# Run in a fresh interpreter per size, so each peak is that parse's own.
_RSS_SCRIPT = """
import json, mmap, sys
from pathlib import Path
from worker.parsers import trace_csv
from worker.parsers.options import NO_OPTIONS
def hwm():
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(('VmHWM:', 'VmRSS:')):
            yield line.split(':')[0], int(line.split()[1]) / 1024
base = dict(hwm())['VmRSS']
path = Path(sys.argv[1])
with open(path, 'rb') as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
    parsed = trace_csv.parse(view, path.name, NO_OPTIONS)
print(json.dumps({'base_mb': base, 'peak_mb': dict(hwm())['VmHWM'],
                  'points': parsed.signals[0].trace.points}))
"""


def _float_alone(data: bytes, rounds: int) -> float:
    """Seconds, best of ``rounds``, for ``float()`` over the cells of ``data`` already split:
    what no parse of the trace can beat, measured on the same cells in the same run, since
    CPython's float() is much slower on 17-digit cells than on the 15 an export prints."""
    cells = data.replace(b"\n", b",").split(b",")[:-1]
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        list(map(float, cells))
        best = min(best, time.perf_counter() - started)
    return best


def traces(bench: Bench) -> list[Row]:
    from worker.parsers import trace_csv
    from worker.parsers.options import NO_OPTIONS

    section = TRACES
    rows: list[Row] = []
    folder = bench.folder("traces")
    for mb in bench.sizes.trace_mb:
        bench.log(f"traces: {mb:g} MB")
        data = workload.trace(int(mb * MB))
        path = folder / f"TRACE_{mb:g}MB.dx_DAD1A.CSV"
        path.write_bytes(data)
        rounds, best = max(3, int(TRACE_ROUNDS_MB / mb)), float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            parsed = trace_csv.parse(data, path.name, NO_OPTIONS)
            best = min(best, time.perf_counter() - started)
            points = parsed.signals[0].trace.points if parsed.signals[0].trace else 0
            del parsed
        rate = len(data) / MB / best
        floats = len(data) / MB / _float_alone(data, rounds)
        del data
        rows.append(Row(section, f"{mb:g} MB parse (in-process trace_csv.parse)", rate, "MB/s",
                        f"≥ {TRACE_TARGET:g} MB/s", at_least(rate, TRACE_TARGET),
                        f"{points:,} points; best of {rounds}; float() alone on the same "
                        f"cells {floats:.1f} MB/s ({rate / floats:.2f}× of it)"))
        peak = _parse_rss(path)
        over = peak["peak_mb"] - peak["base_mb"] if peak else None
        rows.append(Row(section, f"{mb:g} MB parse, memory over the interpreter (own process, "
                                 "file mapped)", over, "MB", f"≤ {TRACE_MEMORY_TARGET:g} MB",
                        at_most(over, TRACE_MEMORY_TARGET),
                        f"peak RSS {peak['peak_mb']:.0f} MB; the points alone "
                        f"{points * 16 / MB:.0f} MB" if peak else "no /proc on this platform"))
        path.unlink()
    return rows


_UV_RSS_SCRIPT = """
import json, sys, time
from pathlib import Path
from worker.parsers import chemstation_uv
from worker.parsers.options import NO_OPTIONS
def hwm():
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(('VmHWM:', 'VmRSS:')):
            yield line.split(':')[0], int(line.split()[1]) / 1024
import numpy, rainbow.agilent.chemstation  # loaded before the base line, as in a consumer
path = Path(sys.argv[1])
data = path.read_bytes()
base = dict(hwm())['VmRSS']
started = time.perf_counter()
parsed = chemstation_uv.parse(data, path.name, NO_OPTIONS)
seconds = time.perf_counter() - started
s = parsed.spectra[0]
print(json.dumps({'base_mb': base, 'peak_mb': dict(hwm())['VmHWM'], 'seconds': seconds,
                  'frames': s.frames, 'wavelengths': len(s.wavelengths),
                  'stored_mb': len(s.data) / 1e6}))
"""


def spectra(bench: Bench) -> list[Row]:
    """A DAD spectra file (100 MB by default): parsed in its own process (bytes in memory, as
    a consumer holds them) and ingested whole by ``accu-ingest ingest`` (read, store, register,
    parse, write in one process); the peak resident set of each."""
    section = SPECTRA
    if peak_rss_mb(os.getpid()) is None:
        return [Row(section, "peak RSS", None, "MB", note="no /proc on this platform")]
    bench.log(f"spectra: building a {bench.sizes.spectra_mb:g} MB .UV from the corpus file's "
              "frames")
    folder = bench.folder("spectra")
    path = folder / "DAD1.UV"
    path.write_bytes(workload.uv_spectra(workload.CORPUS, int(bench.sizes.spectra_mb * MB)))
    size = path.stat().st_size / MB
    out = json.loads(subprocess.run([sys.executable, "-c", _UV_RSS_SCRIPT, str(path)],
                                    capture_output=True, text=True, check=True, cwd=REPO,
                                    timeout=900).stdout)
    rows = [
        Row(section, f"{size:.0f} MB parse", size / out["seconds"], "MB/s",
            note=f"{out['frames']:,} spectra × {out['wavelengths']} wavelengths, stored in "
                 f"{out['stored_mb']:.0f} MB"),
        Row(section, f"{size:.0f} MB parse peak RSS (own process)", out["peak_mb"], "MB",
            f"≤ {SPECTRA_RSS_TARGET:.0f} MB", at_most(out["peak_mb"], SPECTRA_RSS_TARGET),
            f"{out['peak_mb'] - out['base_mb']:.0f} MB over the process holding the bytes")]
    bench.log("spectra: accu-ingest ingest")
    data_dir = folder / "data"
    script = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
              "capture_output=True); print(resource.getrusage(resource.RUSAGE_CHILDREN)"
              ".ru_maxrss / 1024)")
    peak = float(subprocess.run(
        [sys.executable, "-c", script, sys.executable, "-m", "worker", "ingest",
         "--data-dir", str(data_dir), str(path)],
        capture_output=True, text=True, check=True, cwd=folder, timeout=900).stdout)
    rows.append(Row(section, f"{size:.0f} MB `accu-ingest ingest` peak RSS", peak, "MB",
                    f"≤ {SPECTRA_RSS_TARGET:.0f} MB", at_most(peak, SPECTRA_RSS_TARGET),
                    "one process: read, hash, store, register, parse, write"))
    shutil.rmtree(folder)
    return rows


def _parse_rss(path: Path) -> dict[str, float] | None:
    if peak_rss_mb(os.getpid()) is None:
        return None
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(path)], capture_output=True,
                         text=True, check=True, cwd=REPO, timeout=600).stdout
    return json.loads(out)


def growth(bench: Bench) -> list[Row]:
    """Per-file cost of a burst with ``small`` then ``large`` files already in the database.

    The real worker fills one database to ``small`` files and another to ``large`` (dropped at
    once, not timed). Then bursts go into fresh copies of the two in turn (ABBA order, a new
    worker on each copy), and the medians are compared: the machine's speed drifts over
    minutes, and one burst per size moved the figure from +1 % to +26 % between three runs
    of the same code. Taking turns keeps that drift out of the comparison.

    The cost judged is the CPU time of the worker's processes per file; wall time per file
    (first to last commit) is printed beside it.
    """
    small, large = bench.sizes.growth
    n = bench.sizes.growth_burst
    scaled = "" if large >= 20_000 else "scaled down from 1,000 vs 20,000 (--long runs those)"
    section = f"Growth: per-file cost of {n:,} more files, {small:,} vs {large:,} in the database"
    filled = {size: _filled_data(bench, size) for size in (small, large)}
    cpu: dict[int, list[float | None]] = {small: [], large: []}
    wall: dict[int, list[float]] = {small: [], large: []}
    for r in range(bench.sizes.growth_rounds):
        for size in (small, large) if r % 2 == 0 else (large, small):
            name = f"growth-{size}-{r}"
            bench.log(f"growth: burst of {n} with {size} in the database (round {r + 1})")
            data = bench.folder(name) / "data"
            shutil.copytree(filled[size], data)
            _, folders = bench.stage(f"{name}-staging", n)
            # The copy's writeback must not land in the burst, where the worker's fsyncs would
            # wait behind it: the 20,000-file copy has twenty times the 1,000-file one's.
            os.sync()
            w = bench.worker(name, data_dir=data)
            try:
                w.start()
                w.wait_ready()
                time.sleep(bench.idle_seconds)
                used = w.cpu_seconds()
                result = measure_burst(w, folders, already_final=size)
                after = w.cpu_seconds()
            finally:
                w.stop()
            shutil.rmtree(bench.folder(name), ignore_errors=True)
            if result.steady_files_per_s is None:
                raise RuntimeError(f"growth burst of {n} files committed at once: use more files")
            cpu[size].append(None if used is None or after is None else (after - used) * 1e3 / n)
            wall[size].append(1000.0 / result.steady_files_per_s)

    def median_of(values: Sequence[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return statistics.median(known) if len(known) == len(values) else None

    def each(values: Sequence[float | None]) -> str:
        return ", ".join(f"{v:.3g}" for v in values if v is not None)

    rounds = bench.sizes.growth_rounds
    how = f"median of {rounds} bursts, in turn with the other size: " if rounds > 1 else ""
    wall_change = (median_of(wall[large]) / median_of(wall[small]) - 1) * 100  # type: ignore[operator]
    cpu_small, cpu_large = median_of(cpu[small]), median_of(cpu[large])
    rows = []
    if cpu_small is not None and cpu_large is not None:
        change = (cpu_large / cpu_small - 1) * 100
        rows += [
            Row(section, f"CPU per file, {small:,} in the database", cpu_small, "ms/file",
                note=f"{how}{each(cpu[small])}; user + system time of the worker's processes"),
            Row(section, f"CPU per file, {large:,} in the database", cpu_large, "ms/file",
                note=f"{how}{each(cpu[large])}"),
        ]
    else:
        change = wall_change
    rows += [
        Row(section, f"wall per file, {small:,} in the database", median_of(wall[small]),
            "ms/file", note=f"{how}{each(wall[small])}; first → last commit of a burst"),
        Row(section, f"wall per file, {large:,} in the database", median_of(wall[large]),
            "ms/file", note=f"{how}{each(wall[large])}"),
        Row(section, "growth", change, "%", "< 20 % (1k → 20k)",
            below(change, GROWTH_TARGET) if not scaled else None,
            "; ".join(filter(None, [
                f"of CPU per file; wall per file {wall_change:+.1f} %"
                if cpu_small is not None and cpu_large is not None else "of wall per file",
                scaled]))),
    ]
    return rows


def _filled_data(bench: Bench, files: int) -> Path:
    """A stopped worker's data folder after it ingested ``files`` files dropped at once."""
    name = f"growth-fill-{files}"
    bench.log(f"growth: filling a database with {files} files")
    _, folders = bench.stage(f"{name}-staging", files)
    w = bench.worker(name)
    try:
        w.start()
        w.wait_ready()
        measure_burst(w, folders)
    finally:
        w.stop()
    return w.data


def scaled_out(bench: Bench) -> list[Row]:
    """The same burst into one node, then into a scaled-out installation (PostgreSQL + Redis,
    one watcher) with 1, 2, 3 consumer processes: throughput, ratio to the single node measured
    just before (the machine's speed drifts over minutes), and CPU per file."""
    n = bench.sizes.scaleout
    section = f"Scaled out: {n:,} files, PostgreSQL database and Redis queue on this machine"
    measure = "scaled out / single node (best)"
    try:
        from . import scaleout
    except ImportError as exc:
        return [Row(section, measure, None, "×", note=f"skipped: not importable ({exc})")]
    reason = scaleout.unreachable()
    if reason:
        return [Row(section, measure, None, "×", note=f"skipped: {reason}")]
    bench.log(f"scaled out: single node, {n} files")
    exports, folders = bench.stage("scaleout-single-staging", n)
    w = bench.worker("scaleout-single")
    try:
        w.start()
        w.wait_ready()
        time.sleep(bench.idle_seconds)
        cpu_before = w.cpu_seconds()
        single = measure_burst(w, folders)
        cpu_after = w.cpu_seconds()
    finally:
        w.stop()
    single_cpu = None if cpu_before is None or cpu_after is None else \
        (cpu_after - cpu_before) * 1000 / n
    rows = [Row(section, "single node (run, 2 consumer processes, SQLite)", single.files_per_s,
                "files/s", note=f"CPU {single_cpu:.2f} ms/file" if single_cpu else "")]
    ratios: dict[int, float] = {}
    for consumers in bench.sizes.scaleout_consumers:
        bench.log(f"scaled out: 1 watcher + {consumers} consumer(s), {n} files")
        _, folders = bench.stage(f"scaleout-{consumers}-staging", 0, exports)
        figures = scaleout.burst(folders, bench.folder(f"scaleout-{consumers}"), watchers=1,
                                 consumers=consumers, idle_seconds=bench.idle_seconds)
        ratios[consumers] = figures.files_per_s / single.files_per_s
        cpu = "" if figures.cpu_ms is None else (
            f"CPU {figures.cpu_ms:.2f} ms/file (watcher {figures.watcher_cpu_ms:.2f}) + "
            f"PostgreSQL backends {figures.server_cpu_ms:.2f}")
        rows.append(Row(section, f"1 watcher + {consumers} consumer{'s' if consumers > 1 else ''}",
                        figures.files_per_s, "files/s",
                        note="; ".join(filter(None, [
                            f"{ratios[consumers]:.2f}× single node", cpu,
                            f"{figures.rejected} rejected!" if figures.rejected else ""]))))
        shutil.rmtree(bench.folder(f"scaleout-{consumers}"), ignore_errors=True)
    best = max(ratios, key=lambda c: ratios[c])
    rows.append(Row(section, measure, ratios[best], "×", "≥ 0.5×",
                    at_least(ratios[best], SCALEOUT_TARGET),
                    f"with {best} consumer{'s' if best > 1 else ''}; embedded defaults' timings, "
                    "the single node's burst just before"))
    return rows
