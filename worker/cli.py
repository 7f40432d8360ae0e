"""The ``accu-ingest`` command line: run the worker, ingest once, and the operator's tools."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from worker import (
    __version__,
    audit,
    backup,
    db,
    export,
    ingest,
    keys,
    ledger,
    logs,
    resultsview,
    retry,
    unit,
    watcher,
)
from worker.entry import add_serve_parsers, common, settings_of
from worker.models import FINAL_STATES, INGESTED, REJECTED, SourceFile
from worker.progress import IngestProgress
from worker.queue import QueueUnavailable
from worker.settings import Settings, SettingsError

log = logging.getLogger("worker")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accu-ingest", description=__doc__)
    parser.add_argument("--version", action="version", version=f"accu-ingest {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_serve_parsers(sub)

    p = sub.add_parser("ingest", help="ingest files or folders now, synchronously")
    common(p)
    p.add_argument("paths", nargs="+", type=Path)

    p = sub.add_parser("status", help="files by state, backlog, last ingest")
    common(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("results", help="current results")
    common(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--sample", help="only this sample id")

    p = sub.add_parser("calibration", help="a job's calibration curve, its points and flags")
    common(p)
    p.add_argument("job", help="job name (its export folder) or id")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("audit", help="the audit trail")
    common(p)
    p.add_argument("action", choices=["verify"])
    for module in (export, unit, backup, retry):
        module.add_parser(sub, common)
    return parser


# Commands whose files are the operator's (an export, a unit file), not the data folder's.
OWN_FILES = ("export", "service")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.setup(args.verbose)
    try:
        settings = settings_of(args)
        if args.command not in OWN_FILES:
            keys.restrict(settings.data_dir)
        if args.command in ("run", "watch", "consume"):
            logs.setup(args.verbose, settings, args.command)
        return COMMANDS[args.command](settings, args)
    except (SettingsError, db.DatabaseUnavailable, QueueUnavailable) as exc:
        print(f"accu-ingest: {exc}", file=sys.stderr)
        return 2


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from worker import service
    service.run(settings, role=args.command)
    return 0


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    """One-shot: the same intake and ingest steps, run in this process; sources stay in place.

    Files whose part depends on others (a ChemStation .D folder's CSV set waiting for its
    Report.TXT) are taken again until every file is final, so the summary is the truth.
    """
    db.open_database(settings)
    owner = ledger.owner_id("oneshot")
    files = list(_expand(args.paths))
    if not files:
        print("accu-ingest: no files found in the given paths", file=sys.stderr)
        return 1
    audit.open_chain()
    sizes = {path: path.stat().st_size for _, path in files}
    taken: dict[int, tuple[str, Settings]] = {}
    per_file: list[int | None] = []  # each file's ledger row (None: not taken)
    with IngestProgress(len(files), sum(sizes.values())) as bar:
        for base, path in files:
            rel = path.relative_to(base).as_posix()
            shown = ledger.ledger_path(rel)[0]  # printable: undecodable bytes as escapes
            st = path.stat()
            cand = watcher.Candidate(st.st_size, st.st_mtime_ns, time.time(), time.time())
            # Files named on the command line are complete: a rejected one is copied to
            # quarantine/ now, not after dispose_settle_seconds (no watcher comes back to it).
            local = settings.model_copy(update={"inbox": base, "after_ingest": "keep",
                                                "dispose_settle_seconds": 0.0})
            outcome = watcher.take(local, path, rel, cand, owner)
            if outcome is None or isinstance(outcome, watcher.Trouble):
                why = outcome.reason if outcome else "changed while being read"
                bar.line(f"REJECTED {shown}: {why}; not ingested")
                per_file.append(None)
            else:
                row, _ = outcome
                taken.setdefault(row.id, (shown, local))
                per_file.append(row.id)
                ingest.process(local, row.id, owner)
            bar.advance(sizes[path])
        deadline = time.monotonic() + settings.group_settle_seconds + 30
        while time.monotonic() < deadline:
            waiting = [i for i, s in _states(taken).items() if s not in FINAL_STATES]
            if not waiting:
                break
            time.sleep(0.2)
            for file_id in waiting:
                ingest.process(taken[file_id][1], file_id, owner)
        states = _states(taken)
        for file_id, (rel, _) in taken.items():
            row = SourceFile.get_by_id(file_id)
            if states[file_id] == REJECTED:
                where = f"line {row.error_line}: " if row.error_line else ""
                bar.line(f"REJECTED {rel}: {where}{row.error}")
            elif states[file_id] not in FINAL_STATES:
                bar.line(f"NOT FINISHED {rel}: still {states[file_id]}")
    audit.checkpoint()
    ingested = sum(1 for i in per_file if i is not None and states[i] == INGESTED)
    failed = len(files) - ingested
    print(f"{ingested} ingested, {failed} rejected")
    return 1 if failed else 0


def _states(taken: dict[int, tuple[str, Settings]]) -> dict[int, str]:
    return {r.id: r.state for r in SourceFile.select(SourceFile.id, SourceFile.state)
            .where(SourceFile.id.in_(list(taken)))}


def _expand(paths: list[Path]) -> list[tuple[Path, Path]]:
    """(base, file) pairs; a folder keeps its own name in the relative path (it is the Job)."""
    found: list[tuple[Path, Path]] = []
    for path in paths:
        path = path.resolve()
        if path.is_dir():
            found += [(path.parent, f) for f in sorted(path.rglob("*"))
                      if f.is_file() and not f.is_symlink() and not f.name.startswith(".")]
        elif path.is_file():
            found.append((path.parent, path))
        else:
            print(f"accu-ingest: {path} does not exist", file=sys.stderr)
    return found


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from worker.health import Probe, facts
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


def cmd_results(settings: Settings, args: argparse.Namespace) -> int:
    db.open_database(settings)
    rows = resultsview.result_rows(args.sample)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for r in rows:
        print(resultsview.format_result(r))
    if not rows:
        print("no results")
    return 0


def cmd_calibration(settings: Settings, args: argparse.Namespace) -> int:
    db.open_database(settings)
    try:
        report = resultsview.calibration_report(resultsview.find_job(args.job))
    except resultsview.JobNotFound as exc:
        print(f"accu-ingest: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print("\n".join(resultsview.format_calibration(report)))
    return 0 if report["curves"] else 1


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
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


COMMANDS = {"run": cmd_run, "watch": cmd_run, "consume": cmd_run, "ingest": cmd_ingest,
            "status": cmd_status, "results": cmd_results, "calibration": cmd_calibration,
            "audit": cmd_audit}
COMMANDS.update({"export": export.cmd_export, "service": unit.cmd_service,
                 "backup": backup.cmd_backup, "retry": retry.cmd_retry})
