"""``accu-ingest status``: files by state, backlog, last ingest — the probe's facts."""

from __future__ import annotations

import argparse
import json

from worker.cli.options import command, common
from worker.record import db
from worker.settings import Settings

NAMES = ("status",)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = command(sub, "status", "files by state, backlog, last ingest", """
How many files are in each state, how many wait, and when the last one was ingested: the
facts /status serves, read from the database (the worker need not run). It never creates a
database: run it from the folder that holds data/, or pass --data-dir or --config.""", """
  accu-ingest status
  accu-ingest status --data-dir /srv/accu/data --json""")
    common(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(settings: Settings, args: argparse.Namespace) -> int:
    from worker.runtime.health import Probe, facts
    db.open_database(settings)
    info = facts(Probe(settings=settings, role="cli"))
    for own in ("pid", "uptime_s", "role", "consumer_processes"):  # facts of a running worker
        info.pop(own)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for state, n in info["files"].items():
            print(f"{state:>10}: {n}")
        print(f"{'duplicate':>10}: {info['duplicates']}   (copies of content already in the "
              "ledger; `accu-ingest show ID` lists a file's)")
        print(f"   backlog: {info['backlog']}\nlast ingest: {info['last_ingest'] or 'never'}")
    return 0
