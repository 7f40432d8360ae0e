"""``accu-ingest show`` and ``jobs``: one file's whole story, and the jobs, as the pages show
them (worker/web/queries.py reads both)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from worker.cli.options import command, common
from worker.record import audit, db
from worker.settings import Settings

NAMES = ("show", "jobs")


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = command(sub, "show", "one file's story: ledger row, audit events, results, duplicates",
                """
One file as the ledger knows it: its state (and the reason and retry command when rejected),
where its raw bytes are, every audit event in order with the chain checked for each, the
injections and results it produced, and the duplicate copies that pointed at it. FILE is a
ledger id, a SHA-256 (or its first 8+ digits), a path as the ledger has it, or a file name.
Exit 1 when nothing matches.""", """
  accu-ingest show 42
  accu-ingest show 'Batch 7/S-042_Report.csv'
  accu-ingest show 3f2a9c1e --rehash
  accu-ingest show 42 --json""")
    common(p)
    p.add_argument("file", metavar="FILE|ID|SHA256", help="which file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--rehash", action="store_true",
                   help="read the stored bytes again and check their SHA-256")

    p = command(sub, "jobs", "the jobs, newest first, with their samples and files", """
Every job (an export folder, or loose files dropped together), newest first, with how many
samples and files it has. accu-ingest results --job JOB and calibration JOB go further.""",
                """
  accu-ingest jobs
  accu-ingest jobs --name assay --limit 20 --json""")
    common(p)
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--name", help="only jobs whose name contains this")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (default 50)")


def run(settings: Settings, args: argparse.Namespace) -> int:
    db.open_database(settings)
    return (_show if args.command == "show" else _jobs)(settings, args)


def _show(settings: Settings, args: argparse.Namespace) -> int:
    from worker.web import queries
    try:
        row = queries.find_file(args.file)
    except queries.NotFound as exc:
        print(f"accu-ingest: {exc}", file=sys.stderr)
        return 1
    story = queries.file_story(settings, row, audit.load_key(settings, create=False),
                               with_rehash=args.rehash)
    if args.json:
        print(json.dumps(story, indent=2, ensure_ascii=False, default=str))
    else:
        print("\n".join(lines(story)))
    return 0


def lines(s: dict[str, Any]) -> list[str]:
    f = s["file"]
    out = [f"file {f['id']}: {f['path']}",
           f"  state      {f['state']}" + ("; left the inbox" if f["disposed"] else ""),
           f"  sha256     {f['sha256']}",
           f"  size       {f['size']:,} bytes; format {f['format'] or '—'}",
           f"  seen       {f['first_seen']} on {f['origin']}; finished {f['finished_at'] or '—'}",
           f"  job        {_job(s['job'])}",
           f"  now at     {s['now_at'] or '—'}"]
    raw = s["raw"]
    out.append(f"  raw bytes  {raw['file'] or 'not on this machine'}"
               + (f" at offset {raw['offset']:,}" if raw["offset"] is not None else "")
               + ("; a copy in the database" if raw["in_database"] else ""))
    if s["rehash"]:
        out.append(f"  re-hashed  {'ok' if s['rehash']['ok'] else 'MISMATCH'}: "
                   f"{s['rehash']['message']}")
    if s["rejected"]:
        r = s["rejected"]
        where = f"line {r['line']}: " if r["line"] else ""
        out += [f"  REJECTED   {where}{r['reason']}", f"  retry      {r['retry']}"]
    for label, key in (("earlier", "previous_revision"), ("later", "next_revision")):
        if s[key]:
            out.append(f"  {label} revision: file {s[key]}")
    out.append("")
    out.append(f"injections ({len(s['injections'])}):")
    for i in s["injections"]:
        out.append(f"  {i['id']}: {i['sample']} ({i['sample_kind']}) injection {i['number']}, "
                   f"{i['peaks']} peaks, traces {', '.join(i['signals']) or '—'}"
                   + (" [superseded]" if i["superseded"] else ""))
    out.append(f"results ({len(s['results'])}):")
    for r in s["results"]:
        value = r["text"] if r["text"] is not None else (
            "—" if r["value"] is None else f"{r['value']:.{r['digits']}f}")
        out.append(f"  {r['kind']:<22} {r['analyte'] or '':<12} {value} {r['unit'] or ''}"
                   + (f"  flags: {', '.join(r['flags'])}" if r["flags"] else ""))
    out.append(f"duplicates ({len(s['duplicates'])}):")
    for d in s["duplicates"]:
        out.append(f"  {d['at']}  {d['path']}  (this file was {d['original_state']})")
    verdict = "each links to the one before it and its hash checks" if s["chain_ok"] else \
        "the chain does NOT check (see below); run `accu-ingest audit verify`"
    out.append(f"audit events ({len(s['events'])}; {verdict}):")
    for e in s["events"]:
        details = json.dumps(e["details"], ensure_ascii=False, sort_keys=True)
        mark = "" if e["chain"] == "ok" else f"  !! {e['chain']}"
        out.append(f"  {e['seq']:>7} {e['at']}  {e['event']:<9} {details}{mark}")
    return out


def _job(job: dict[str, Any] | None) -> str:
    return f"{job['name']} (id {job['id']})" if job else "—"


def _jobs(settings: Settings, args: argparse.Namespace) -> int:
    from worker.web import queries
    found = queries.jobs(size=max(args.limit, 1), name=args.name)
    if args.json:
        print(json.dumps(found.items, indent=2, ensure_ascii=False))
        return 0
    if not found.items:
        print("no jobs")
    for j in found.items:
        print(f"{j['id']:>6}  {j['name']:<32} {j['samples']:>4} samples {j['files']:>5} files  "
              f"method {j['method'] or '—'}  acquired {j['acquired_at'] or '—'}")
    if found.next_cursor:
        print(f"(the newest {len(found.items)}; --limit for more)", file=sys.stderr)
    return 0
