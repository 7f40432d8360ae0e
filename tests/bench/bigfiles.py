"""Memory whatever the file: a 1,000,000-row peak table, a 400 MB trace and the longest trace
the default limit accepts through the real worker (watcher, raw store, consumer processes),
each in a worker of its own, with the peak resident set of every process beside the 300 MB
bound."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from . import workload
from .table import Row, below
from .workerproc import Worker
from .workload import HEADER

if TYPE_CHECKING:
    from .scenarios import Bench

SECTION = "Bounded memory (real worker, default settings, one file each)"
RSS_BOUND_MB = 300.0
MB = 1_000_000


def big_report(count: int) -> bytes:
    """An OpenLab Report (the corpus preamble) whose peak table has ``count`` rows that add up
    to their Sum row: genuine but for its size."""
    preamble = workload.Workload().preamble
    rows = (f"0.1000,1.0000,{100 / count:.6f},{i / 1e5:.5f},{i / 1e5 + 4e-6:.6f},"
            f"{i / 1e5 + 2e-6:.6f}" for i in range(count))
    return "\n".join([*preamble, HEADER, *rows, f"Sum,{count}.0000,,,,", ""]).encode()


def points_trace(points: int) -> bytes:
    """A DAD trace of exactly ``points`` rows, printed as the instrument prints them."""
    return "".join(f"{(i + 1) / 1200:.12f},{(i % 977) / 7.3:.9f}\n"
                   for i in range(points)).encode("ascii")


def big_files(bench: Bench) -> list[Row]:
    rows: list[Row] = []
    count, trace_mb = bench.sizes.big_table_rows, bench.sizes.big_trace_mb
    longest = bench.sizes.longest_trace_points
    cases = [(f"{count:,}-row peak table", "MILLION_Report.csv", lambda: big_report(count)),
             (f"{trace_mb:g} MB trace", "HUGE_Std.dx_DAD1A.CSV",
              lambda: workload.trace(int(trace_mb * MB))),
             (f"{longest:,}-point trace (the longest max_trace_points accepts)",
              "LONGEST_Std.dx_DAD1A.CSV", lambda: points_trace(longest))]
    for what, name, make in cases:
        staging = bench.folder(f"big-staging-{name}")
        (staging / name).write_bytes(make())
        size_mb = (staging / name).stat().st_size / MB
        os.sync()
        w = bench.worker(f"big-{name}")
        try:
            w.start()
            w.wait_ready()
            bench.log(f"bounded memory: {what} ({size_mb:.0f} MB)")
            started = time.monotonic()
            os.rename(staging / name, w.inbox / name)
            deadline = started + 900
            while (row := w.finished(name)) is None:
                w.check_running()
                if time.monotonic() > deadline:
                    w.fail(f"{name} not final 900 s after its drop")
                time.sleep(0.2)
            seconds = time.monotonic() - started
            parts = [mb for mb in w.peak_rss_parts_mb() if mb is not None]
            error = _error(w, name)
        finally:
            w.stop()
        peak = max(parts) if parts else None
        outcome = row.state + (f": {error}" if error else "")
        rows.append(Row(SECTION, f"{what}: peak RSS of any process", peak,
                        "MB", f"< {RSS_BOUND_MB:g} MB", below(peak, RSS_BOUND_MB),
                        f"{size_mb:.1f} MB file, {outcome[:150]}; {seconds:.0f} s; processes "
                        f"{', '.join(f'{p:.0f}' for p in parts)} MB"))
    return rows


def _error(w: Worker, name: str) -> str | None:
    row = w._ledger().execute("SELECT error FROM source_file WHERE path = ?", (name,)).fetchone()
    return row[0] if row else None

