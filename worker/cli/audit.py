"""``accu-ingest audit verify``: the chain, its key and its anchor checked, or the first break."""

from __future__ import annotations

import argparse

from worker.cli.options import command, common
from worker.record import audit, db
from worker.settings import Settings

NAMES = ("audit",)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = command(sub, "audit", "verify the audit trail", """
verify: recompute the hash chain of every audit event, check its HMAC key and compare it with
the anchor file's checkpoints. Exit 0 when intact, 1 at the first break or mismatch, 2 when
there is no database to verify.""", """
  accu-ingest audit verify
  accu-ingest audit verify --config /etc/accu-ingest.toml""")
    common(p)
    p.add_argument("action", choices=["verify"], help="verify: check the chain and anchor")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 0 only when the chain is intact and keeps every promise of the anchor file."""
    db.open_database(settings)
    path = settings.audit_anchor_path
    anchor = audit.read_anchor(path, audit.load_key(settings, create=False))
    report = audit.verify({cp.seq for cp in anchor.checkpoints})
    if not report.ok:
        print(f"audit trail BROKEN at event {report.first_bad}: {report.problem}")
        return 1
    if report.keyed_since is None:
        print(f"chain intact: {report.events:,} events, plain SHA-256 only (written before "
              "the trail was keyed: the worker keys it when it next starts)")
    else:
        print(f"chain intact: {report.events:,} events, HMAC-SHA256 keyed since event "
              f"{report.keyed_since:,} (key fingerprint {report.fingerprint})")
    broken = audit.compare(report, anchor)
    if broken:
        print(f"audit anchor MISMATCH ({path}): {broken}")
        return 1
    if not anchor.checkpoints:
        print(f"anchor {path}: none yet (nothing to check the trail's end against)")
        return 0
    last = max(anchor.checkpoints, key=lambda cp: cp.seq)
    after = report.events - last.seq
    count = len(anchor.checkpoints)
    print(f"anchor {path}: {count:,} checkpoint{'s' if count > 1 else ''} match; the last, event "
          f"{last.seq:,} at {last.at}" + (f"; {after:,} later events not checkpointed yet"
                                          if after else ", is the trail's end"))
    return 0
