"""Content-addressed raw store: the exact bytes of every file, kept before anything else happens.

A file is written under a temporary name, fsync'd, renamed to ``raw/ab/<sha256>`` and its folder
fsync'd, so after ``put`` returns the bytes survive a crash or power loss. Writing the same content
twice is a no-op, which makes re-registration after a crash idempotent.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path


class StoreError(Exception):
    """The raw bytes could not be stored (disk full, permissions); transient from our side."""


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def path_for(root: Path, sha256: str) -> Path:
    return root / sha256[:2] / sha256


def put(root: Path, data: bytes, sha256: str, fsync: bool = True,
        sync_folder: bool = True) -> Path:
    """Store ``data`` (whose digest is ``sha256``) durably; returns its path.

    With ``sync_folder`` False the caller fsyncs the returned path's folder itself (once for a
    batch of files) before relying on the rename.
    """
    target = path_for(root, sha256)
    if target.exists() and target.stat().st_size == len(data):
        return target
    tmp = target.with_name(f".{sha256}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, target)
        if fsync and sync_folder:
            fsync_dir(target.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot store raw bytes of {sha256[:12]}… under {root}: {exc}") from exc
    return target


def get(root: Path, sha256: str) -> bytes:
    """The stored bytes, checked against their digest so a damaged copy is never used."""
    data = path_for(root, sha256).read_bytes()
    if sha256_of(data) != sha256:
        raise StoreError(f"stored copy of {sha256[:12]}… does not match its SHA-256")
    return data


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable; a no-op where directories cannot be opened (Windows)."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
