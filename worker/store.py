"""Content-addressed raw store: the exact bytes of every file, kept before anything else happens.

A file is written under a temporary name, flushed to disk, renamed to ``raw/ab/<sha256>`` and
the rename flushed, so after ``put`` returns the bytes survive a crash or power loss. Writing the
same content twice is a no-op, which makes re-registration after a crash idempotent.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path


class StoreError(Exception):
    """The raw bytes could not be stored (disk full, permissions); transient from our side."""


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def path_for(root: Path, sha256: str) -> Path:
    return root / sha256[:2] / sha256


def put(root: Path, data: bytes, sha256: str, fsync: bool = True) -> Path:
    """Store ``data`` (whose digest is ``sha256``) durably; returns its path."""
    put_many(root, [(sha256, data)], fsync)
    return path_for(root, sha256)


def put_many(root: Path, blobs: Sequence[tuple[str, bytes]], fsync: bool = True) -> None:
    """Store a batch of (sha256, data) durably: each is written under a temporary name, the
    batch is flushed, and only then renamed into place (and the renames flushed), so a stored
    name always holds complete bytes.

    Where the platform can flush a whole file system at once (Linux ``syncfs``) a batch costs
    two flushes instead of one per file and one per folder: in a burst, one fsync per file was
    most of the watcher's time.
    """
    placed: list[tuple[Path, Path]] = []
    try:
        whole_fs = fsync and _can_syncfs()
        for sha256, data in dict(blobs).items():  # two copies of one content: stored once
            target = path_for(root, sha256)
            try:
                if target.stat().st_size == len(data):
                    continue
            except FileNotFoundError:
                pass
            tmp = target.with_name(f".{sha256}.{os.getpid()}.tmp")
            placed.append((tmp, target))
            try:
                _write(tmp, data, fsync and not whole_fs)
            except FileNotFoundError:  # the first file of its 1-in-256 folder
                target.parent.mkdir(parents=True, exist_ok=True)
                _write(tmp, data, fsync and not whole_fs)
        if not placed:
            return
        if whole_fs:
            syncfs(root)
        for tmp, target in placed:
            os.replace(tmp, target)
        if whole_fs:
            syncfs(root)
        elif fsync:
            for folder in {target.parent for _, target in placed}:
                fsync_dir(folder)
    except OSError as exc:
        for tmp, _ in placed:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot store raw bytes under {root}: {exc}") from exc


def get(root: Path, sha256: str) -> bytes:
    """The stored bytes, checked against their digest so a damaged copy is never used."""
    data = path_for(root, sha256).read_bytes()
    if sha256_of(data) != sha256:
        raise StoreError(f"stored copy of {sha256[:12]}… does not match its SHA-256")
    return data


def _write(path: Path, data: bytes, fsync: bool) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())


@functools.cache
def _libc_syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
    return fn  # type: ignore[no-any-return]


def _can_syncfs() -> bool:
    return _libc_syncfs() is not None


def syncfs(path: Path) -> None:
    """Flush everything written to the file system holding ``path`` (Linux; errors are
    reported since kernel 5.8)."""
    fn = _libc_syncfs()
    assert fn is not None
    fd = os.open(path, os.O_RDONLY)
    try:
        if fn(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs: {os.strerror(err)}", str(path))
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable; a no-op where directories cannot be opened (Windows)."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
