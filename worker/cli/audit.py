"""``accu-ingest audit``: verify the trail (and the rows and raw bytes it vouches for), show one
file's history, export events for QA review."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from worker.cli.options import command, common
from worker.record import audit, db, digest, rawcheck, review
from worker.runtime import logs
from worker.settings import Settings

NAMES = ("audit",)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = command(sub, "audit", "verify, show or export the audit trail", """
verify: recompute the hash chain of every audit event, check its HMAC key and compare it with
the anchor file's checkpoints; --rows also recomputes the digest of every file's rows and every
computed result, --raw re-hashes every stored raw file. Exit 0 when intact, 1 at the first
break or any mismatch, 2 when there is no database to verify.
show: one file's ledger row and every event about it (by id, SHA-256 or path).
export: every event since a date, as JSON or CSV, with who and why as columns.""", """
  accu-ingest audit verify
  accu-ingest audit verify --rows --raw
  accu-ingest audit show 41
  accu-ingest audit show run1/S1_Report.csv
  accu-ingest audit export --since 2026-12-01 --format csv -o trail.csv""")
    common(p)
    p.add_argument("action", choices=["verify", "show", "export"],
                   help="verify the trail; show one file; export events")
    p.add_argument("file", nargs="?", metavar="FILE|ID|SHA",
                   help="show: the file, by ledger id, SHA-256 (or its first digits) or path")
    p.add_argument("--rows", action="store_true",
                   help="verify: also check every file's rows and every result against the "
                        "digests in the trail")
    p.add_argument("--raw", action="store_true",
                   help="verify: also re-hash every stored raw file")
    p.add_argument("--since", help="export: events from this UTC date or time (default: all)")
    p.add_argument("--format", choices=["json", "csv"],
                   help="export: json (default) or csv")
    p.add_argument("--output", "-o", type=Path, help="export: file to write (default: stdout)")


def run(settings: Settings, args: argparse.Namespace) -> int:
    problem = _mistake(args)
    if problem:
        print(f"accu-ingest: {problem}", file=sys.stderr)
        return 2
    db.open_database(settings)
    if args.action == "show":
        return show(args.file)
    if args.action == "export":
        return export(settings, args)
    return verify(settings, args.rows, args.raw)


def _mistake(args: argparse.Namespace) -> str | None:
    if args.action == "show" and not args.file:
        return "audit show needs the file: its ledger id, SHA-256 or path"
    if args.action != "show" and args.file:
        return f"audit {args.action} takes no file ({args.file}); did you mean audit show?"
    if args.action != "verify" and (args.rows or args.raw):
        return "--rows and --raw are options of audit verify"
    if args.action != "export" and (args.since or args.format or args.output):
        return "--since, --format and --output are options of audit export"
    if args.action == "export" and args.since:
        try:
            review.parse_since(args.since)
        except ValueError as exc:
            return str(exc)
    return None


def verify(settings: Settings, rows: bool, raw: bool) -> int:
    """Exit 0 only when the chain is intact, keeps every promise of the anchor file and, when
    asked, every row and raw file matches its digest."""
    code = verify_chain(settings)
    if code:
        return code
    if rows:
        report = digest.verify_rows()
        extra = "".join(f"; {n:,} {what}" for n, what in (
            (report.undigested, "events from before row digests (not checkable)"),
            (report.pruned, "pruned by retention")) if n)
        if report.ok:
            print(f"rows intact: {report.files:,} files' rows and {report.computes:,} result "
                  f"computations match their digests{extra}")
        else:
            for problem in report.problems:
                print(f"rows CHANGED: {problem}")
            print(f"rows: {len(report.problems):,} mismatch(es) in {report.files:,} files and "
                  f"{report.computes:,} computations{extra}")
            code = 1
    if raw:
        found = rawcheck.check_all(settings)
        never = (f"; {found.never_stored:,} rejected for their size before being stored"
                 if found.never_stored else "")
        blobs = f" and {found.blobs:,} raw_blob rows" if found.blobs else ""
        if found.ok:
            print(f"raw intact: {found.checked:,} stored files{blobs} ({found.bytes:,} bytes) "
                  f"match their SHA-256{never}")
        else:
            for problem in found.problems:
                print(f"raw DAMAGED: {problem}")
            print(f"raw: {len(found.problems):,} problem(s); {found.checked:,} stored files "
                  f"match{never}")
            code = 1
    return code


def verify_chain(settings: Settings) -> int:
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


def show(what: str) -> int:
    try:
        row = review.find_file(what)
    except review.NotFound as exc:
        print(f"accu-ingest: {exc}", file=sys.stderr)
        return 2
    print(f"file {row.id}: {row.path}\n  sha256 {row.sha256}, {row.size:,} bytes, "
          f"origin {row.origin}, first seen {row.first_seen}\n  state {row.state}"
          + (f" ({row.format})" if row.format else "")
          + (f": {row.error}" if row.error else ""))
    events = review.file_events(row)
    want = None
    for ev in events:
        item = review.flat(ev)
        details = item["details"]
        want = details.get("rows", want) if ev.event == "ingested" else want
        who = f" by {item['by']}" if item["by"] else ""
        why = f" — {item['reason']}" if item["reason"] else ""
        rest = {k: v for k, v in details.items() if k not in ("by", "reason")}
        print(f"  {ev.seq:>8} {ev.at} {ev.event}{who}{why}  {review.json_text(rest)}")
    if want is not None:
        same = digest.file_rows(row.id) == want
        print(f"  rows: {'match' if same else 'DIFFER FROM'} the digest recorded at ingest")
    return 0


def export(settings: Settings, args: argparse.Namespace) -> int:
    since = review.parse_since(args.since) if args.since else ""
    fmt = args.format or "json"
    write = review.write_csv if fmt == "csv" else review.write_json
    if args.output:
        encoding = "utf-8-sig" if fmt == "csv" else "utf-8"
        with open(args.output, "w", encoding=encoding, newline="") as out:
            n = write(review.events_since(since), out)
        print(f"{n:,} events written to {args.output}", file=sys.stderr)
    else:
        n = write(review.events_since(since), sys.stdout)
    logs.action(settings, "audit export", f"exported {n} audit events", events=n,
                since=args.since, format=fmt,
                output=str(args.output) if args.output else "stdout")
    return 0
