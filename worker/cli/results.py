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


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = command(sub, "results", "current results", """
The current result of every sample and analyte (a re-exported file replaces its earlier
results), with flags. Reads the database; never creates one.""", """
  accu-ingest results
  accu-ingest results --sample S-042 --json
  accu-ingest results | head""")
    common(p)
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--sample", metavar="ID", help="only this sample id")

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
    db.open_database(settings)
    rows = view.result_rows(args.sample)
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
