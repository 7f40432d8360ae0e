"""Exactly once under SIGKILL. The real worker is killed at random moments while a burst
of files (valid, bad and duplicate drops) arrives, restarted, and every file is counted after.

The same harness runs at scale from the command line: ``python -m tests.faults.harness --files
1000 --kills 100``; the long test below is that run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from faults.harness import run


def _check(files: int, kills: int, root: Path, seed: int) -> None:
    tally = run(files=files, kills=kills, root=root, seed=seed)
    print(tally.line())
    assert tally.problems == [], "\n".join(tally.problems[:30])
    assert (tally.lost, tally.duplicated) == (0, 0)
    assert tally.kills == kills
    assert tally.ingested + tally.rejected == tally.distinct
    assert tally.rejected > 0 and tally.duplicates > 0  # the burst really had both kinds


def test_sigkill_during_burst_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    _check(files=60, kills=5, root=tmp_path, seed=int(os.environ.get("ACCU_FAULT_SEED", "3")))


@pytest.mark.long
def test_thousand_files_hundred_kills(tmp_path: Path) -> None:
    _check(files=1000, kills=100, root=tmp_path, seed=int(os.environ.get("ACCU_FAULT_SEED", "7")))
