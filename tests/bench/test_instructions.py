"""The instruction counts at a toy size: real runs under valgrind, every row filled."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from support.corpus import IN_CI

from . import instructions
from .scenarios import Bench
from .test_smoke import TOY
from .workload import Workload

COUNTED = dataclasses.replace(TOY, counted_parses=5, counted_commits=(8, 8))


def _bench(root: Path) -> Bench:
    return Bench(workdir=root, workload=Workload(), sizes=COUNTED)


def test_every_row_is_counted(tmp_path: Path) -> None:
    if shutil.which("valgrind") is None:
        if IN_CI:
            pytest.fail("valgrind is not installed: CI installs it (.ci/run)")
        pytest.skip("valgrind is not installed (apt-get install valgrind)")
    rows = {r.measure: r for r in instructions.instructions(_bench(tmp_path))}
    assert len(rows) == 5
    ours = rows["ours, parsers.parse on 100_Report.csv"].value
    # A parse is tens of thousands of instructions at least; a difference of two runs that
    # counted the same thing would be about nothing.
    assert ours is not None and ours > 20_000
    for name in ("write transaction (commit_chunk), burst files",
                 "write transaction (commit_chunk), Report-only files"):
        value = rows[name].value
        assert value is not None and value > 100_000, (name, value)
    theirs = rows["Accu-Mk1, parse_peakdata_csv on 100_Report.csv"]
    if theirs.value is not None:  # the peer's source may not be at hand (its note says so)
        ratio = rows["ours / Accu-Mk1 parser, by instructions"].value
        assert ratio == pytest.approx(theirs.value / ours)


def test_without_valgrind_each_row_says_how_to_install_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    rows = instructions.instructions(_bench(tmp_path))
    assert rows and all(r.value is None and "apt-get install valgrind" in r.note for r in rows)
