"""A backup of everything the records need, taken while the worker runs, and its restore.

A backup folder holds the database (SQLite's online backup API: a valid copy while the worker
writes, which a file copy would not be, the WAL holding recent commits), the raw store packs
the copied database points at, the audit key and anchor file, the configuration file, and
``MANIFEST.json`` with the SHA-256 and size of every one of them.

Consistency: the anchor file is copied first and the database second, so every checkpoint in
the copy is of an event the copied trail holds. Raw packs are never written again once
stored, so copying the ones the copied ledger names, after the database, gets every byte it
points at; packs stored later belong to rows the copy does not have and are left out.

A restore checks every file against the manifest before anything is put in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from worker import __version__
from worker.record import store, who
from worker.settings import Settings

MANIFEST = "MANIFEST.json"
FORMAT = 1
DATABASE = "accu-ingest.db"
PAGES_PER_STEP = 1024
CHUNK = 1 << 20


class BackupError(Exception):
    """The backup cannot be made or restored; the message says what and the fix."""


def sqlite_path(settings: Settings) -> Path | None:
    url = settings.database
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def _copy(src: Path, dest: Path) -> dict[str, Any]:
    """Copy a file, hashing what was written; its manifest entry."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    h, size = hashlib.sha256(), 0
    with open(src, "rb") as fin, open(dest, "xb") as fout:
        while block := fin.read(CHUNK):
            h.update(block)
            fout.write(block)
            size += len(block)
        fout.flush()
        os.fsync(fout.fileno())
    return {"sha256": h.hexdigest(), "size": size}


def file_sha256(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def backup(settings: Settings, dest: Path) -> dict[str, Any]:
    """Write a backup folder at ``dest`` (new, or empty); returns its manifest."""
    source = sqlite_path(settings)
    if source is None:
        raise BackupError("the database is PostgreSQL: back it up with pg_dump (raw bytes are in "
                          "its raw_blob table), and the configuration and audit key with it; see "
                          "README \"Back up and restore\"")
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest} exists; give a new folder name")
    dest.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, Any]] = {}
    # The anchor before the database: every checkpoint copied is of an event the copy holds.
    if settings.audit_anchor_path.is_file():
        files["audit.anchor"] = _copy(settings.audit_anchor_path, dest / "audit.anchor")
    out = dest / DATABASE
    with closing(sqlite3.connect(source, timeout=30)) as src, \
            closing(sqlite3.connect(out)) as copy:
        src.backup(copy, pages=PAGES_PER_STEP)
        ok = copy.execute("PRAGMA integrity_check").fetchone()[0]
        if ok != "ok":
            raise BackupError(f"the copy at {out} fails its integrity check: {ok}")
        rows = copy.execute("SELECT sha256, raw_pack FROM source_file").fetchall()
        head = copy.execute("SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1"
                            ).fetchone()
    files[DATABASE] = {**dict(zip(("sha256", "size"), file_sha256(out), strict=True))}
    for rel in sorted({pack for _, pack in rows if pack is not None}):
        if (settings.raw_dir / rel).is_file():
            files[f"raw/{rel}"] = _copy(settings.raw_dir / rel, dest / "raw" / rel)
    for sha, pack in rows:
        old = store.path_for(settings.raw_dir, sha)
        if pack is None and old.is_file():
            rel = old.relative_to(settings.raw_dir).as_posix()
            files[f"raw/{rel}"] = _copy(old, dest / "raw" / rel)
    if settings.audit_key is None and settings.audit_key_path.is_file():
        files["audit.key"] = _copy(settings.audit_key_path, dest / "audit.key")
    config = settings.config_file
    if config is not None and config.is_file():
        files["config.toml"] = _copy(config, dest / "config.toml")
    manifest = {
        "format": FORMAT, "version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "by": who.operator(None)["by"], "database": str(source),
        "config": str(config.resolve()) if config is not None else None,
        "audit_head": list(head) if head else None, "files": files,
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n",
                                 encoding="utf-8")
    return manifest


@dataclass
class Checked:
    manifest: dict[str, Any]
    problems: list[str]


def check(src: Path) -> Checked:
    """Every file of a backup against its manifest."""
    try:
        manifest = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{src} has no {MANIFEST}: not a backup made by accu-ingest backup"
                          ) from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{src / MANIFEST} cannot be read: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{src / MANIFEST} is of format {manifest.get('format')}, this "
                          f"version reads format {FORMAT}")
    problems = []
    for rel, want in sorted(manifest["files"].items()):
        path = src / rel
        if not path.is_file():
            problems.append(f"{rel} is missing")
            continue
        sha, size = file_sha256(path)
        if (sha, size) != (want["sha256"], want["size"]):
            problems.append(f"{rel} does not match its SHA-256 in the manifest")
    return Checked(manifest, problems)


def restore(settings: Settings, src: Path, manifest: dict[str, Any]) -> list[str]:
    """Put a checked backup in place; returns what it says to the operator beyond that."""
    notes = []
    target = sqlite_path(settings)
    assert target is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("-wal", "-shm"):  # of a database no longer there: never to be replayed
        Path(str(target) + suffix).unlink(missing_ok=True)
    places = {DATABASE: target, "audit.anchor": settings.audit_anchor_path}
    if settings.audit_key is None:
        places["audit.key"] = settings.audit_key_path
    for rel in manifest["files"]:
        if rel.startswith("raw/"):
            places[rel] = settings.raw_dir / rel[len("raw/"):]
    for rel, dest in places.items():
        if rel not in manifest["files"]:
            continue
        if (dest.exists() and rel.startswith("raw/")
                and file_sha256(dest)[0] == manifest["files"][rel]["sha256"]):
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".restoring")
        tmp.unlink(missing_ok=True)
        _copy(src / rel, tmp)
        os.replace(tmp, dest)
    if "config.toml" in manifest["files"]:
        original = Path(manifest["config"]) if manifest.get("config") else None
        if original is not None and not original.exists():
            original.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / "config.toml", original)
            notes.append(f"configuration restored to {original}")
        elif original is not None and file_sha256(original)[0] != \
                manifest["files"]["config.toml"]["sha256"]:
            notes.append(f"{original} differs from the backup's configuration; the backup's is "
                         f"{src / 'config.toml'}: compare them before the next start")
    return notes


def existing(settings: Settings) -> list[Path]:
    """What a restore would overwrite: the database, raw store, key and anchor."""
    target = sqlite_path(settings)
    found = [p for p in (target, settings.audit_anchor_path) if p is not None and p.exists()]
    if settings.raw_dir.is_dir() and any(settings.raw_dir.iterdir()):
        found.append(settings.raw_dir)
    return found
