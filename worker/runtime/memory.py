"""Handing memory a process has freed back to the system, so it does not count as in use.

glibc's malloc keeps the memory Python frees inside its heap for later allocations. After a
chunk of files, or a watcher's intake batch, much of that is free but scattered between the
chunks still in use; the process keeps it resident, and the next burst's peak adds to it.
``malloc_trim`` returns those free pages to the system (it also trims inside the heap, not only
at its top). Elsewhere (macOS, Windows, musl) the allocator is left to itself.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

_trim: Callable[[int], int] | None = None
if sys.platform.startswith("linux"):
    try:
        _trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        _trim = None


def release() -> None:
    """Give the free pages of malloc's heap back to the system: a walk of the heap, cheap
    beside a chunk of files, so it runs after each one."""
    if _trim is not None:
        _trim(0)
