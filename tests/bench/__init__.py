"""The benchmark: the real worker on embedded defaults, figures beside their targets.

Run it from the repository root with ``python -m tests.bench`` (``--help`` for the options). It is
not part of the default pytest run: only ``test_smoke.py`` is collected, at a toy size.
"""

import sys
from pathlib import Path

# Run as ``python -m tests.bench``, tests/ is not on sys.path as it is under pytest; it must be,
# so that tests/support loads under its one name ``support``.
_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
