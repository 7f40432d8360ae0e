"""A lock between processes on one machine: a file beside the data, locked by the OS.

The OS drops the lock when its holder dies, so a killed process never leaves one behind. A
waiter polls in steps of at most 2 ms rather than blocking, so it can give up after a timeout
and so that the same code runs on POSIX (``flock``) and Windows (``msvcrt.locking``). Each
hold has its own descriptor: a lock excludes other descriptors, so threads of one process
take turns too.
"""

from __future__ import annotations

import os
import threading
import time

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

MAX_STEP = 0.002


class FileLock:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._local = threading.local()

    def acquire(self, timeout: float | None = None) -> bool:
        """Take the lock; False if ``timeout`` seconds passed first (None: wait as long as it
        takes)."""
        # A descriptor per hold, closed on release: threads come and go (one per status
        # request), and a descriptor kept per thread would leak with each of them.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = None if timeout is None else time.monotonic() + timeout
        step = 0.0002
        while not _try_lock(fd):
            if deadline is not None and time.monotonic() > deadline:
                os.close(fd)
                return False
            time.sleep(step)
            step = min(step * 2, MAX_STEP)
        self._local.fd = fd
        return True

    def release(self) -> None:
        """Let the next one in; a no-op when this thread does not hold it."""
        fd = getattr(self._local, "fd", None)
        if fd is not None:
            self._local.fd = None
            try:
                _unlock(fd)
            finally:
                os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:  # BlockingIOError on POSIX, PermissionError on Windows: held elsewhere
        return False
    return True


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
