"""``accu-ingest backup DEST``: database, raw store and configuration, consistent while the worker
runs, with a manifest of SHA-256 hashes (record/snapshot.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from worker.cli.options import command, common
from worker.record import snapshot
from worker.runtime import logs
from worker.settings import Settings

NAMES = ("backup",)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = command(sub, "backup", "back up database, raw files and configuration (safe while running)",
                """
Write a backup folder: a consistent copy of the SQLite database (SQLite's online backup, safe
while the worker runs), the raw store packs it points at, the audit key and anchor file, the
configuration file, and MANIFEST.json with the SHA-256 of each. accu-ingest restore puts it
back. The folder holds the audit key: keep it as safe as the data folder. PostgreSQL: use
pg_dump (see the README).""", """
  accu-ingest backup /mnt/backup/accu-$(date +%F)
  accu-ingest backup D:\\backup\\accu-2026-12-06 --config C:\\accu\\accu-ingest.toml""")
    common(p)
    p.add_argument("dest", type=Path, help="folder to write; must not exist yet (or be empty)")


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        manifest = snapshot.backup(settings, args.dest)
    except snapshot.BackupError as exc:
        print(f"accu-ingest: {exc}", file=sys.stderr)
        return 2
    files = manifest["files"]
    size = sum(f["size"] for f in files.values())
    packs = sum(1 for rel in files if rel.startswith("raw/"))
    logs.action(settings, "backup", f"backed up to {args.dest}", dest=str(args.dest),
                files=len(files), bytes=size, audit_head=manifest["audit_head"])
    head = manifest["audit_head"]
    print(f"backed up to {args.dest}: database, {packs} raw store file(s), "
          f"{'configuration, ' if 'config.toml' in files else ''}audit key and anchor "
          f"({len(files)} files, {size:,} bytes; audit trail up to event "
          f"{head[0] if head else 0}); manifest {args.dest / snapshot.MANIFEST}")
    return 0
