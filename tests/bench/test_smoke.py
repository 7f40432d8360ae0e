"""The benchmark's machinery at a toy size: every scenario runs against the real worker and fills
every row of the table. Figures are not judged here (speed is measured, not asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from .run import SCENARIOS, run
from .scenarios import Bench, Sizes, scaled_out
from .table import render, write_json
from .workload import Workload

TOY = Sizes(burst=20, single=3, catchup=20, trace_mb=(0.1, 0.2), e2e_trace_mb=0.1,
            growth=(20, 40), growth_burst=10, growth_rounds=2, spectra_mb=1, web_files=300,
            poll_burst=20, sniff_mb=(0.1, 0.2), big_table_rows=2_000, big_trace_mb=0.5,
            longest_trace_points=1_000, reports=25)

EXPECTED = {
    "Burst": ["end to end (drop → all committed)", "steady rate (first → last commit)",
              "drop → committed p50", "drop → committed p95", "drop → committed p99",
              "  drop → queued p50", "  queued → parsing p50", "  parsing → committed p50",
              "worker peak RSS (VmHWM)", "worker CPU per file",
              "the cores allow at most, at that cost", "parser alone (in-process parsers.parse)",
              "storage floor (same rows, one transaction)",
              "durable floor (plain sqlite3, same files)", "end to end / parser alone",
              "end to end / storage floor", "end to end / durable floor"],
    "Report-only": ["end to end (drop → all committed)", "drop → committed p95",
                    "durable floor (plain sqlite3, same files)", "end to end / durable floor"],
    "Single drops": ["drop → committed p50", "drop → committed p95", "drop → committed max",
                     "  drop → queued p50", "  queued → parsing p50", "  parsing → committed p50"],
    "Catch-up": ["start → all ingested", "rate", "worker peak RSS (VmHWM)"],
    "Parsers (in-process, same run)": [
        "ours on 100_Report.csv (parsers.parse)", "Accu-Mk1 on 100_Report.csv (parse_peakdata_csv)",
        "ours / Accu-Mk1 parser", "detection (every sniffer) on a 0.1 MB trace",
        "detection on a 0.2 MB trace / on a 0.1 MB trace"],
    "Large traces (DAD, time,value)": [
        "0.1 MB parse (in-process trace_csv.parse)",
        "0.1 MB parse, memory over the interpreter (own process, file mapped)",
        "0.2 MB parse (in-process trace_csv.parse)",
        "0.2 MB parse, memory over the interpreter (own process, file mapped)",
        "0.1 MB trace end to end (drop → committed)"],
    "DAD spectra (ChemStation .UV, real frames repeated)": [
        "1 MB parse", "1 MB parse peak RSS (own process)", "1 MB `accu-ingest ingest` peak RSS"],
    "Growth": ["CPU per file, 20 in the database", "CPU per file, 40 in the database",
               "wall per file, 20 in the database", "wall per file, 40 in the database",
               "growth"],
    "Web pages and API": [f"{page} p95" for page in (
        "overview /", "files, first page", "files, a page deep in the ledger",
        "files, state=rejected", "files, name filter", "one file's page", "jobs", "one job",
        "one injection", "audit trail", "API /api/files", "API /api/files/{id}")] + [
        f"accu-ingest {what}, wall" for what in (
            "results (its default --limit 1,000)", "results --job", "results --sample",
            "results --since --limit 100", "show ID", "jobs")],
    "Ingest while a client polls /api/files every second": [
        "without a poller (median of 6)", "with /api/files polled every second (median of 6)",
        "polled / not polled (median of the pairs)"],
    "Bounded memory (real worker, default settings, one file each)": [
        "2,000-row peak table: peak RSS of any process",
        "0.5 MB trace: peak RSS of any process",
        "1,000-point trace (the longest max_trace_points accepts): peak RSS of any process"],
}


def test_every_scenario_fills_its_rows_at_toy_size(tmp_path: Path, corpus: Path) -> None:
    bench = Bench(tmp_path / "work", Workload(corpus), TOY, overrides={"stable_seconds": 0.2},
                  idle_seconds=0.2, log=lambda message: None)
    rows = run(bench, [s for s in SCENARIOS if s is not scaled_out])

    by_section: dict[str, list[str]] = {}
    for r in rows:
        by_section.setdefault(r.section.split(":")[0], []).append(r.measure)
    assert by_section == EXPECTED
    assert [r.measure for r in rows if r.value is None] == []
    # Every generated file was ingested: nothing rejected, the trace went through.
    assert [r.note for r in rows if "rejected!" in r.note or "NOT ingested" in r.note] == []

    text = render(rows, {"cpu": "toy"}, "toy run")
    assert all(r.measure in text for r in rows)
    out = tmp_path / "run.json"
    write_json(out, rows, {"cpu": "toy"}, {"sizes": "toy"})
    assert len(json.loads(out.read_text())["rows"]) == len(rows)
