"""The real instrument exports the tests read, and whether this run is CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The real files the tests use travel with the repository (tests/corpus/README.md: provenance and
# licences), so a fresh clone runs every test; ACCU_CORPUS points them at another copy.
CORPUS = Path(os.environ.get("ACCU_CORPUS", REPO / "tests" / "corpus"))
IN_CI = os.environ.get("CI") == "true"


def corpus_dir() -> Path:
    """The real instrument exports (tests/corpus); skips the test when ACCU_CORPUS names a
    folder that is absent, and fails it under CI, where they must be there."""
    if not CORPUS.is_dir():
        if IN_CI:
            pytest.fail(f"corpus missing at {CORPUS}: CI must have it")
        pytest.skip(f"corpus not found at {CORPUS} (set ACCU_CORPUS)")
    return CORPUS


def corpus_bytes(*parts: str) -> bytes:
    """One corpus file's bytes, with corpus_dir's skip-or-fail when the corpus is absent."""
    return corpus_dir().joinpath(*parts).read_bytes()
