"""``accu-ingest results`` and ``calibration``: current results and a job's curves."""

from __future__ import annotations

import argparse
import json
import sys

from worker.cli.options import command, common
from worker.record import db
from worker.results import view
from worker.settings import Settings

NAMES = ("results", "calibration")
LIMIT = 1000


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = command(sub, "results", "current results", """
The current result of every sample and analyte (a re-exported file replaces its earlier
results), with flags. Reads the database; never creates one.""", """
  accu-ingest results
  accu-ingest results --sample S-042 --json
  accu-ingest results --job 2024-05-13_assay
  accu-ingest results --since 2026-01-13 --limit 100""")
    common(p)
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--sample", metavar="ID", help="only this sample id")
    p.add_argument("--job", metavar="JOB", help="only this job (its name or id)")
    p.add_argument("--since", metavar="DATE", help="only results computed from this UTC date "
                                                   "or time on (2026-01-13, 2026-01-13T15:30)")
    p.add_argument("--limit", metavar="N", type=int, default=LIMIT,
                   help=f"at most N results, the newest jobs' (default {LIMIT}; 0 = all)")

    p = command(sub, "calibration", "a job's calibration curve, its points and flags", """
A job's calibration: each analyte's fitted curve, r², its points (used or excluded, and why)
and flags. Exit 1 when the job has no curve.""", """
  accu-ingest calibration 2024-05-13_assay
  accu-ingest calibration 17 --json""")
    common(p)
    p.add_argument("job", help="job name (its export folder) or id")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(settings: Settings, args: argparse.Namespace) -> int:
    return (_results if args.command == "results" else _calibration)(settings, args)


def _results(settings: Settings, args: argparse.Namespace) -> int:
    from worker.web.paging import BadQuery, when
    try:
        since = when("--since", args.since)
    except BadQuery as exc:
        print(f"accu-ingest: {exc}", file=sys.stderr)
        return 2
    if args.limit < 0:
        print("accu-ingest: --limit: expected 0 (all) or more", file=sys.stderr)
        return 2
    db.open_database(settings)
    try:
        rows = view.result_rows(args.sample, job=args.job, since=since,
                                limit=args.limit or None)
    except view.JobNotFound as exc:
        print(f"accu-ingest: {exc}", file=sys.stderr)
        return 1
    if args.limit and len(rows) == args.limit:
        print(f"(the newest jobs' {args.limit:,} results; --limit 0 shows all, --job, --sample "
              "or --since narrow them)", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for r in rows:
        print(view.format_result(r))
    if not rows:
        print("no results")
    return 0


def _calibration(settings: Settings, args: argparse.Namespace) -> int:
    db.open_database(settings)
    try:
        report = view.calibration_report(view.find_job(args.job))
    except view.JobNotFound as exc:
        print(f"accu-ingest: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print("\n".join(view.format_calibration(report)))
    return 0 if report["curves"] else 1
