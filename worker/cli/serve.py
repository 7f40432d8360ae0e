"""``accu-ingest run``, ``watch`` and ``consume``: the long-running roles (runtime/roles.py)."""

from __future__ import annotations

import argparse

from worker.cli.options import SERVE, add_serve_parsers
from worker.settings import Settings

NAMES = SERVE


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    add_serve_parsers(sub)


def run(settings: Settings, args: argparse.Namespace) -> int:
    from worker.runtime import roles
    roles.run(settings, role=args.command)
    return 0
