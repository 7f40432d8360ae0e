"""Parsers alone, in this process: ours beside the peer's on the format both read, and what
detection costs on a big file (it must read only the head)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from worker import parsers

from . import peer, workload
from .table import Row, at_least, at_most
from .workload import CORPUS, REPORT_TEMPLATE

if TYPE_CHECKING:
    from .scenarios import Bench

SECTION = "Parsers (in-process, same run)"
PEER_TARGET = 1.0  # × Accu-Mk1's parser
SNIFF_TARGET_MS = 1.0
SNIFF_GROWTH_TARGET = 1.5  # detection on 50 MB / on 1 MB
COPIES = 500
MB = 1_000_000


def _best(run: Callable[[], object], repeat: int = 7) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def parsers_vs_peer(bench: Bench) -> list[Row]:
    """Files/s of ``parsers.parse`` (sniffing, totals check, validation) and of Accu-Mk1's
    ``parse_peakdata_csv`` (with the UTF-8 decoding it is given text after) on 100_Report.csv:
    COPIES distinct bytes objects each, taken in turn, best of several rounds. Both sides are
    timed alike: each result is dropped as the next file is read."""
    data = (CORPUS / REPORT_TEMPLATE).read_bytes()
    name = REPORT_TEMPLATE.name
    copies = [bytes(bytearray(data)) for _ in range(COPIES)]
    parsers.parse(data, name)  # entry points loaded outside the clock
    rows: list[Row] = []
    module, note = peer.load()

    def ours() -> None:
        for c in copies:
            parsers.parse(c, name)

    ours_s = _best(ours) / COPIES
    if module is None:
        rows += [Row(SECTION, f"ours on {name} (parsers.parse)", 1 / ours_s, "files/s"),
                 Row(SECTION, "ours / Accu-Mk1 parser", None, "×", f"≥ {PEER_TARGET:g}×",
                     note=note)]
    else:
        def theirs() -> None:
            for c in copies:
                module.parse_peakdata_csv(name, c.decode("utf-8"))

        theirs()
        peer_s = _best(theirs) / COPIES
        ours_s = min(ours_s, _best(ours) / COPIES)
        rows += [Row(SECTION, f"ours on {name} (parsers.parse)", 1 / ours_s, "files/s"),
                 Row(SECTION, f"Accu-Mk1 on {name} (parse_peakdata_csv)", 1 / peer_s,
                     "files/s", note=note),
                 Row(SECTION, "ours / Accu-Mk1 parser", peer_s / ours_s, "×",
                     f"≥ {PEER_TARGET:g}×", at_least(peer_s / ours_s, PEER_TARGET))]
    small_mb, big_mb = bench.sizes.sniff_mb
    small = workload.trace(int(small_mb * MB))
    big = workload.trace(int(big_mb * MB))
    trace_name = "SNIFF_Std.dx_DAD1A.CSV"
    small_ms = _best(lambda: [parsers.detect(small, trace_name) for _ in range(20)]) / 20 * 1e3
    big_ms = _best(lambda: [parsers.detect(big, trace_name) for _ in range(20)]) / 20 * 1e3
    rows += [Row(SECTION, f"detection (every sniffer) on a {small_mb:g} MB trace", small_ms,
                 "ms", f"≤ {SNIFF_TARGET_MS:g} ms", at_most(small_ms, SNIFF_TARGET_MS)),
             Row(SECTION, f"detection on a {big_mb:g} MB trace / on a {small_mb:g} MB trace",
                 big_ms / small_ms,
                 "×", f"≤ {SNIFF_GROWTH_TARGET:g}× (reads the head only)",
                 at_most(big_ms / small_ms, SNIFF_GROWTH_TARGET))]
    return rows
