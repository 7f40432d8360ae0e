"""``python -m tests.bench``: run every scenario and print the figures beside their targets."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import bigfiles, instructions, machine, parsing, profile, scenarios, web
from .table import Row, render, write_json
from .workload import Workload

HERE = Path(__file__).resolve().parent
LAST_RUN = HERE / "last-run.json"
LAST_PROFILE = HERE / "last-run.profile.txt"
SCENARIOS = (scenarios.burst, scenarios.reports, parsing.parsers_vs_peer, scenarios.traces,
             scenarios.spectra, scenarios.single_drops, scenarios.catch_up, scenarios.growth,
             web.web_pages, web.web_polling, scenarios.scaled_out, bigfiles.big_files)
# Run only when named with --only: they need a tool beyond the test extra, or take long.
OPT_IN = (instructions.instructions,)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    p.add_argument("--long", action="store_true",
                   help="20,000-file burst and catch-up, growth 1,000 vs 20,000 (2.5 to 5 "
                        "minutes on a 2-core machine)")
    p.add_argument("--files", type=int, help="files in the burst and the catch-up")
    p.add_argument("--workdir", type=Path,
                   help="where inboxes and data go (default: a new temporary folder, removed "
                        "after); must be one filesystem, so drops are renames")
    p.add_argument("--json", type=Path, default=LAST_RUN, help=f"default {LAST_RUN}")
    p.add_argument("--only", action="append",
                   choices=[s.__name__ for s in (*SCENARIOS, *OPT_IN)],
                   help="run only this scenario (repeatable); "
                        f"{', '.join(s.__name__ for s in OPT_IN)} runs only when named "
                        "(it needs valgrind)")
    p.add_argument("--profile", action="store_true",
                   help=f"record the burst worker with py-spy into {LAST_PROFILE} and print "
                        "its top costs")
    return p


def run(bench: scenarios.Bench,
        which: Sequence[Callable[[scenarios.Bench], list[Row]]] = SCENARIOS) -> list[Row]:
    rows: list[Row] = []
    for scenario in which:
        rows += scenario(bench)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sizes = scenarios.LONG if args.long else scenarios.DEFAULT
    if args.files:
        sizes = dataclasses.replace(sizes, burst=args.files, catchup=args.files)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="accu-bench-"))
    bench = scenarios.Bench(workdir=workdir, workload=Workload(), sizes=sizes,
                            profile_to=LAST_PROFILE if args.profile else None)
    started = time.monotonic()
    try:
        rows = run(bench, [s for s in (*SCENARIOS, *OPT_IN)
                           if s.__name__ in (args.only or [t.__name__ for t in SCENARIOS])])
        details = machine.details(workdir)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    minutes = (time.monotonic() - started) / 60
    header = (f"accu-ingest benchmark{' (--long)' if args.long else ''}: real worker on embedded "
              f"defaults (SQLite, fsync on), {minutes:.1f} min")
    print(render(rows, details, header))
    if args.profile:
        print("\n" + "\n".join(profile.summary(LAST_PROFILE)))
    meta: dict[str, Any] = {"at": datetime.now(UTC).isoformat(timespec="seconds"),
                            "long": args.long, "minutes": round(minutes, 1),
                            "sizes": dataclasses.asdict(sizes)}
    write_json(args.json, rows, details, meta)
    print(f"\nwritten to {args.json}")
    return 0
