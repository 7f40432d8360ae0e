"""``accu-ingest ingest PATH...``: the same intake and ingest steps, now, in this process."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from worker.cli.options import command, common
from worker.cli.progress import IngestProgress
from worker.consume import ingest
from worker.intake import watcher
from worker.record import audit, corrections, db, ledger
from worker.record.models import FINAL_STATES, INGESTED, REJECTED, SourceFile
from worker.settings import Settings

NAMES = ("ingest",)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = command(sub, "ingest", "ingest files or folders now, synchronously", """
Ingest the given files or folders now, in this process, with the same steps as the worker;
the sources stay where they are. A folder keeps its name as the job. A file the ledger already
has under the same path, size and modification time is not read again (a rerun of a folder is
cheap and adds no events); one that differs is read, hashed and registered as usual. Exit 1
when any file was rejected (each is listed with its reason).""", """
  accu-ingest ingest export/2024-05-13_assay
  accu-ingest ingest run1.txt run2.txt --data-dir /tmp/try""")
    common(p)
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="a file or folder")


def run(settings: Settings, args: argparse.Namespace) -> int:
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
    corrections.record(settings)  # the configuration's corrections, as they take effect
    sizes = {path: path.stat().st_size for _, path in files}
    taken: dict[int, tuple[str, Settings]] = {}
    per_file: list[int | None] = []  # each file's ledger row (None: not taken)
    rels = [path.relative_to(base).as_posix() for base, path in files]
    seen = ledger.latest_sightings(settings.node, [ledger.ledger_path(r)[0] for r in rels])
    known: dict[int, str] = {}  # unchanged since the ledger saw them: not read again
    with IngestProgress(len(files), sum(sizes.values())) as bar:
        for (base, path), rel in zip(files, rels, strict=True):
            shown = ledger.ledger_path(rel)[0]  # printable: undecodable bytes as escapes
            st = path.stat()
            before = seen.get(shown)
            if before is not None and before[1:] == (st.st_size, st.st_mtime_ns):
                known.setdefault(before[0], shown)
                per_file.append(before[0])
                bar.advance(sizes[path])
                continue
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
        states = _states({**dict.fromkeys(known), **taken})
        for file_id, rel in known.items():
            if states[file_id] == REJECTED:
                bar.line(f"REJECTED {rel}: unchanged since it was rejected; retry it with "
                         f"accu-ingest retry {file_id} --reason \"…\"")
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
    unchanged = f" ({len(known)} unchanged since last time, not read again)" if known else ""
    print(f"{ingested} ingested, {failed} rejected{unchanged}")
    return 1 if failed else 0


def _states(taken: dict[int, object]) -> dict[int, str]:
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
