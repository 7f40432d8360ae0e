"""runtime/memory.py: memory a process freed goes back to the system."""

from __future__ import annotations

import subprocess
import sys

import pytest

# In a process of its own, so the test's own heap does not blur the figures: bytes objects of
# 16 KiB come from malloc's heap (not Python's small-object pools, nor a mapping of their own);
# every other one is freed, so the free memory sits between blocks still in use, where the
# heap's top cannot shrink over it.
SCRIPT = """
from worker.runtime import memory

def anon_kib():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1])

kept = [bytes(16384) + bytes([i % 256]) for i in range(4000)]
del kept[::2]
before = anon_kib()
memory.release()
print(before - anon_kib())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_memory_between_live_allocations_goes_back_to_the_system() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         check=True)
    assert int(out.stdout) > 20_000  # KiB, of the 32 MiB freed
