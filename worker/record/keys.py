"""Per-installation secrets in key files, and owner-only permissions for the data folder.

A key file is created once, mode 0600, and never overwritten: losing the audit key makes the
trail unverifiable, and a new queue key only orphans the tasks already queued. Several
processes starting at once (``run`` and its consumer processes) race to create it; ``O_EXCL``
lets exactly one write it and the others read back what it wrote.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path

KEY_BYTES = 32
OWNER_ONLY_UMASK = 0o077
_READ_BACK_SECONDS = 5.0  # the winner of the race writes 65 bytes; this is ample


class KeyFileError(Exception):
    """A key file exists but cannot be read or is not a key; the message names the file."""


def load_or_create(path: Path) -> bytes:
    """The key in ``path``, generating it (64 hex digits, mode 0600) when the file is absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_back(path)
    try:
        os.write(fd, secrets.token_hex(KEY_BYTES).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return load(path)


def load(path: Path) -> bytes:
    """The key in an existing key file (its text without surrounding white space)."""
    try:
        text = path.read_bytes().strip()
    except OSError as exc:
        raise KeyFileError(f"key file {path} cannot be read: {exc.strerror or exc}") from None
    if len(text) < 16:
        raise KeyFileError(f"key file {path} holds no key (expected at least 16 characters, "
                           f"found {len(text)})")
    return text


def _read_back(path: Path) -> bytes:
    """Another process created the file a moment ago and may still be writing it."""
    deadline = time.monotonic() + _READ_BACK_SECONDS
    while True:
        try:
            return load(path)
        except KeyFileError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def restrict(data_dir: Path) -> None:
    """Owner-only from now on: files and folders this process creates are 0600/0700, and the
    data folder is 0700, so nothing in it (older files included) is open to other accounts.

    POSIX only; on Windows the folder's ACL decides (see the README).
    """
    if os.name == "nt":
        return
    os.umask(OWNER_ONLY_UMASK)
    with contextlib.suppress(OSError):  # absent (created later, 0700) or not ours to change
        os.chmod(data_dir, 0o700)
