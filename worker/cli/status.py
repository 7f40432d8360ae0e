"""``accu-ingest status``: files by state, backlog, last ingest — the probe's facts."""

from __future__ import annotations

import argparse
import json

from worker.cli.options import common
from worker.record import db
from worker.settings import Settings

NAMES = ("status",)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("status", help="files by state, backlog, last ingest")
    common(p)
    p.add_argument("--json", action="store_true")


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
        print(f"   backlog: {info['backlog']}\nlast ingest: {info['last_ingest'] or 'never'}")
    return 0
