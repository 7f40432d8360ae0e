"""Fault injection: the real worker, killed and restarted while files arrive, then counted."""

import sys
from pathlib import Path

# Run as ``python -m tests.faults.harness``, tests/ is not on sys.path as it is under pytest;
# it must be, so that tests/support loads under its one name ``support``.
_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
