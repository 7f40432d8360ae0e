"""``accu-ingest backup DEST``: a consistent copy of the SQLite database while the worker runs.

SQLite's online backup API copies page by page under the database's own locking, so the copy is
a valid database even while the worker writes (copying the file would not be: the WAL holds
recent commits). The raw store (``data/raw``) is the evidence the rows were made from; it is
content-addressed and append-only, so an ordinary file copy of it is consistent.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

from worker.cli.options import command, common
from worker.runtime import logs
from worker.settings import Settings

PAGES_PER_STEP = 1024


def backup(source: Path, dest: Path) -> None:
    """Copy the live database at ``source`` to ``dest`` (which must not exist)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(source, timeout=30)) as src, \
            closing(sqlite3.connect(dest)) as out:
        src.backup(out, pages=PAGES_PER_STEP)
        ok = out.execute("PRAGMA integrity_check").fetchone()[0]
    if ok != "ok":
        raise RuntimeError(f"the copy at {dest} fails its integrity check: {ok}")


NAMES = ("backup",)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = command(sub, "backup", "online copy of the SQLite database (safe while running)", """
A consistent copy of the embedded SQLite database, made with SQLite's online backup while the
worker runs, then integrity-checked. Copy data/raw (the raw files) as well; for PostgreSQL
use pg_dump.""", """
  accu-ingest backup /mnt/backup/accu-$(date +%F).db""")
    common(p)
    p.add_argument("dest", type=Path, help="file to write; must not exist yet")


def run(settings: Settings, args: argparse.Namespace) -> int:
    url = settings.database
    if not url.startswith("sqlite:///"):
        print("accu-ingest: backup copies the embedded SQLite database; for PostgreSQL use "
              "pg_dump", file=sys.stderr)
        return 2
    source = Path(url[len("sqlite:///"):])
    if not source.is_file():
        print(f"accu-ingest: no database at {source}", file=sys.stderr)
        return 2
    if args.dest.exists():
        print(f"accu-ingest: {args.dest} exists; give a new file name", file=sys.stderr)
        return 2
    backup(source, args.dest)
    logs.action(settings, "backup", f"backed up {source} to {args.dest}", source=str(source),
                dest=str(args.dest), bytes=args.dest.stat().st_size)
    print(f"backed up {source} to {args.dest} ({args.dest.stat().st_size} bytes); "
          f"also copy {settings.raw_dir} (the raw files)")
    return 0
