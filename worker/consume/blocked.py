"""Folders files cannot be disposed of into (or out of): said once, kept for /status and /readyz.

A read-only or full ``processed/`` (or ``quarantine/``, or an inbox files cannot leave) fails
every disposal poll, once a second, for every waiting file. Instead of a line per file per poll:
one line when a folder starts failing, a reminder every REMIND_SECONDS while it does, and one
when its files move again. The state is this process's: the watcher's disposal poll retries
every waiting file each second, so the watching process always knows.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REMIND_SECONDS = 600.0
LISTED = 20  # folders named in /status; more are counted in the readiness text
FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


@dataclass
class Blocked:
    """One folder disposal cannot write to, since when, and the files waiting on it."""

    folder: Path
    why: str
    fix: str
    since: float
    said: float
    files: set[int] = field(default_factory=set)


_blocked: dict[Path, Blocked] = {}
_lock = threading.Lock()


def failed(folder: Path, exc: OSError, file_id: int) -> None:
    """A file could not be moved because of ``folder``; said once per folder."""
    why, fix = _explain(folder, exc)
    now = time.time()
    with _lock:
        b = _blocked.get(folder)
        if b is None or b.why != why:
            b = _blocked[folder] = Blocked(folder, why, fix, now if b is None else b.since, now,
                                           set() if b is None else b.files)
            log.error("cannot dispose of files: %s is %s; they stay in the inbox until then "
                      "(%s)", folder, why, fix)
        elif now - b.said >= REMIND_SECONDS:
            b.said = now
            log.warning("%s is still %s: %d file(s) wait in the inbox (%s)", folder, why,
                        len(b.files | {file_id}), fix)
        b.files.add(file_id)


def passed(file_ids: set[int]) -> None:
    """These files no longer wait on any folder (moved, or not to be moved any more)."""
    if not _blocked or not file_ids:
        return
    with _lock:
        for folder, b in list(_blocked.items()):
            b.files -= file_ids
            if not b.files:
                del _blocked[folder]
                log.info("%s takes files again: the files that waited for it have left the "
                         "inbox", folder)


def keep_only(file_ids: set[int]) -> None:
    """Files still waiting to be disposed of are these: forget the others (retried, or
    disposed of by another process)."""
    with _lock:
        waiting = {i for b in _blocked.values() for i in b.files}
    passed(waiting - file_ids)


def status() -> list[dict[str, Any]]:
    """For /status: each folder failing, why, since when, how many files wait on it."""
    with _lock:
        blocked = sorted(_blocked.values(), key=lambda b: b.since)
    return [{"folder": str(b.folder), "problem": b.why, "fix": b.fix,
             "since": _iso(b.since), "files": len(b.files)} for b in blocked[:LISTED]]


def waiting() -> int:
    """Files waiting on any folder (for /metrics)."""
    with _lock:
        return len({i for b in _blocked.values() for i in b.files})


def problem() -> str | None:
    """For /readyz: the folders files cannot be disposed of into, and what to do."""
    with _lock:
        blocked = sorted(_blocked.values(), key=lambda b: b.since)
    if not blocked:
        return None
    return "; ".join(f"{b.folder} is {b.why}: {len(b.files)} file(s) cannot leave the inbox; "
                     f"{b.fix}, and they move on their own" for b in blocked[:LISTED])


def culprit(exc: OSError, target: Path | None, source: Path) -> Path:
    """The folder a failed move or delete is stuck on: the target's folder (or the nearest one
    that exists, where the target's is yet to be made) unless that one can be written to and the
    source's folder cannot (the inbox itself read-only)."""
    into = _existing(target.parent) if target is not None else None
    if into is not None and exc.errno in FULL:
        return into
    if into is not None and not os.access(into, os.W_OK | os.X_OK):
        return into
    if not os.access(source.parent, os.W_OK | os.X_OK):
        return source.parent
    return into if into is not None else source.parent


def _existing(folder: Path) -> Path:
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder


def _explain(folder: Path, exc: OSError) -> tuple[str, str]:
    """What is wrong with ``folder`` and the one thing to do, in words."""
    reason = exc.strerror or str(exc)
    if exc.errno in FULL:
        return f"full ({reason})", f"free space on the disk of {folder}"
    if exc.errno == errno.EROFS:
        return (f"on a read-only file system ({reason})",
                f"mount the disk of {folder} read-write")
    if exc.errno in DENIED or not os.access(folder, os.W_OK | os.X_OK):
        return f"not writable ({reason})", f"make {folder} writable by user {_user()}"
    return f"failing ({reason})", f"see why {folder} refuses files"


def _user() -> str:
    try:
        import pwd
        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError, AttributeError):  # Windows, or a uid without a name
        import getpass
        return getpass.getuser()


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
