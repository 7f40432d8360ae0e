"""Python's cyclic garbage collector kept out of the database's write lock.

A collection is triggered by allocations, wherever they happen; inside a write transaction it
holds SQLite's single write lock (and the writers' file lock) while it runs, and every other
writer waits. Paused for the length of the transaction, it runs after the commit instead, on
the same garbage: nothing is freed later than one transaction. Reference counting, which frees
nearly everything, is not affected.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_holders = 0  # threads of this process inside ``paused`` (the collector is process-wide)
_was_enabled = False


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No automatic collection inside; re-enabled (if it was) when the last thread leaves."""
    global _holders, _was_enabled
    with _lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _was_enabled:
                gc.enable()
