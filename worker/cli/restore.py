"""``accu-ingest restore SRC``: a backup checked against its manifest, then put in place."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path

from worker.cli.options import command, common
from worker.record import audit, db, heartbeat, snapshot, who
from worker.runtime import logs
from worker.settings import Settings

NAMES = ("restore",)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = command(sub, "restore", "restore a backup made by accu-ingest backup", """
Check every file of a backup folder against its MANIFEST.json, then put the database, raw
store, audit key and anchor back under the data folder (and the configuration file where it
was, if it is gone), and record the restore in the audit trail with your user name and reason.
Refused while a worker uses the data folder. Run accu-ingest audit verify --rows --raw after.
Exit 1 when the backup does not match its manifest (nothing is changed then).""", """
  accu-ingest restore /mnt/backup/accu-2026-12-06 --reason "disk replaced (INC-2231)"
  accu-ingest restore /mnt/backup/accu-2026-12-06 --replace --reason "database damaged\"""")
    common(p)
    p.add_argument("src", type=Path, help="the backup folder")
    p.add_argument("--reason", metavar="TEXT", help="why (required; recorded in the audit trail)")
    p.add_argument("--replace", action="store_true",
                   help="the data folder has records: move them to data/before-restore-<time>/ "
                        "first")


def run(settings: Settings, args: argparse.Namespace) -> int:
    problem = _refusal(settings, args)
    if problem:
        print(f"accu-ingest: {problem}", file=sys.stderr)
        return 2
    try:
        checked = snapshot.check(args.src)
    except snapshot.BackupError as exc:
        print(f"accu-ingest: {exc}", file=sys.stderr)
        return 2
    if checked.problems:
        for line in checked.problems:
            print(f"backup DAMAGED: {line}")
        print(f"nothing restored: {len(checked.problems)} file(s) of {args.src} do not match "
              "its manifest")
        return 1
    moved = _move_aside(settings) if args.replace else None
    notes = snapshot.restore(settings, args.src, checked.manifest)
    db.open_database(settings)
    audit.open_chain()
    from worker.record.models import database
    with database.atomic():
        audit.record("restored", None, None, source=str(args.src.resolve()),
                     created=checked.manifest["created"], backup_by=checked.manifest["by"],
                     audit_head=checked.manifest["audit_head"],
                     files=len(checked.manifest["files"]),
                     previous=str(moved) if moved else None, **who.operator(args.reason))
    audit.checkpoint()
    logs.action(settings, "restore", f"restored {args.src}", src=str(args.src),
                reason=args.reason, previous=str(moved) if moved else None)
    for note in notes:
        print(note)
    if moved:
        print(f"the records that were there are in {moved}")
    print(f"restored {args.src} ({len(checked.manifest['files'])} files match the manifest; "
          f"backup of {checked.manifest['created']}); check it with accu-ingest audit verify "
          "--rows --raw")
    return 0


def _refusal(settings: Settings, args: argparse.Namespace) -> str | None:
    if not (args.reason or "").strip():
        return ("restore replaces the records, so say why: add --reason \"…\" (recorded in the "
                "audit trail with your user name)")
    target = snapshot.sqlite_path(settings)
    if target is None:
        return ("the database is PostgreSQL: restore it with pg_restore, then copy the raw "
                "store and audit key back (see README \"Back up and restore\")")
    running = _running(target)
    if running:
        return (f"a worker is using this data folder ({running}): stop it first "
                "(systemctl stop accu-ingest, or the Windows service), then restore")
    if snapshot.existing(settings) and not args.replace:
        return (f"{settings.data_dir} already holds records: pass --replace to move them to "
                f"{settings.data_dir}/before-restore-<time>/ first, or restore into an empty "
                "--data-dir")
    return None


def _running(database: Path) -> str | None:
    """A process whose heartbeat in this database is fresh, by owner (host:pid)."""
    if not database.is_file():
        return None
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)) as con:
            rows = con.execute("SELECT owner, role FROM process_heartbeat WHERE beat_at > ?",
                               (time.time() - heartbeat.STALE_SECONDS,)).fetchall()
    except sqlite3.Error:
        return None
    return ", ".join(f"{role} {owner}" for owner, role in rows) or None


def _move_aside(settings: Settings) -> Path:
    aside = settings.data_dir / f"before-restore-{time.strftime('%Y%m%dT%H%M%S')}"
    aside.mkdir(parents=True)
    target = snapshot.sqlite_path(settings)
    assert target is not None
    for path in (target, Path(str(target) + "-wal"), Path(str(target) + "-shm"),
                 settings.audit_anchor_path, settings.raw_dir):
        if path.exists():
            os.replace(path, aside / path.name)
    return aside
