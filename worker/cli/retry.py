"""``accu-ingest retry``: rejected files processed again now, audited (consume/retry.py)."""

from __future__ import annotations

import argparse
import sys

from worker.cli.options import command, common
from worker.consume.retry import rejected_ids, retry
from worker.record import audit, corrections, db, ledger
from worker.record.models import INGESTED
from worker.runtime import logs
from worker.settings import Settings

NAMES = ("retry",)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = command(sub, "retry", "process rejected (quarantined) files again, now", """
Process rejected files again from their stored raw bytes, in this process, audited: after a
parser fix or a settings change (a table mapping, a code page). Exit 0 when every retried
file was ingested, 1 otherwise.""", """
  accu-ingest retry 41 42 --reason "parser fixed in 1.4 (CR-118)"
  accu-ingest retry --all-rejected --reason "max_file_mb raised for the new detector"
""")
    common(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("ids", nargs="*", type=int, default=[], metavar="ID",
                       help="ledger ids (the reason file names its id)")
    which.add_argument("--all-rejected", action="store_true", help="every rejected file")
    p.add_argument("--reason", metavar="TEXT",
                   help="why (required: a retry can change results; recorded in the audit "
                        "trail with your user name)")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 0 when every retried file was ingested, 1 otherwise."""
    reason = (args.reason or "").strip()
    if not reason:
        print("accu-ingest: retry changes results, so say why: add --reason \"…\" (recorded in "
              "the audit trail with your user name)", file=sys.stderr)
        return 2
    db.open_database(settings)
    ids = rejected_ids() if args.all_rejected else args.ids
    if not ids:
        print("no rejected files")
        return 0
    audit.open_chain()
    corrections.record(settings)  # the configuration's corrections, as they take effect
    owner = ledger.owner_id("retry")
    outcomes = [retry(settings, file_id, owner, reason) for file_id in ids]
    audit.checkpoint()
    for o in outcomes:
        logs.action(settings, "retry", f"retry of file {o.file_id} ({o.path}): {o.state}",
                    file_id=o.file_id, path=o.path, outcome=o.state, detail=o.detail,
                    reason=reason)
        print(f"{o.state:>9} {o.file_id} {o.path}: {o.detail}" if o.detail else
              f"{o.state:>9} {o.file_id} {o.path}")
    ingested = sum(o.state == INGESTED for o in outcomes)
    print(f"{ingested} ingested, {len(outcomes) - ingested} not")
    return 0 if ingested == len(outcomes) else 1
