"""A file that changes or goes while it is being moved out of the inbox is not moved as its row.

Disposal plans a batch's moves, records them, then carries them out: a writer may append to a
file, or someone may take it away, in between. The file is then not the one its row was read
from (a new revision for the watcher), so it stays in the inbox and its row is not marked.
"""

from __future__ import annotations

import errno
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from support.pipeline import Pipeline
from support.reports import random_peaks, report

from worker.consume import blocked
from worker.record.models import AuditEvent, Disposal, SourceFile

NAME = "run/S-1_Inj_1_Report.csv"


def _while_moving(monkeypatch: pytest.MonkeyPatch, source: Path, meanwhile: object) -> None:
    """``meanwhile(source)`` runs just before ``source`` is renamed away."""
    real = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(src) == source:
            meanwhile(source)  # type: ignore[operator]
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)


def _moved() -> list[int]:
    return [e.source_file_id for e in AuditEvent.select().where(AuditEvent.event == "moved")]


def _appended_to_as_it_moves(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
                             ) -> tuple[Path, SourceFile]:
    """A report taken by the watcher, whose writer appends a line as it moves out."""
    source = pipeline.drop(NAME, report(random_peaks(random.Random(1))))
    [row] = pipeline.take(NAME)
    _while_moving(monkeypatch, source,
                  lambda path: path.write_bytes(path.read_bytes() + b"more,1\n"))
    return source, row


def test_a_file_appended_to_as_it_moves_goes_back_to_the_inbox_unmarked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = Pipeline.open(tmp_path)
    try:
        source, row = _appended_to_as_it_moves(pipeline, monkeypatch)
        assert pipeline.ingest([row]) == {row.id: "ingested"}
        assert source.read_bytes().endswith(b"more,1\n")  # where its writer left it
        assert list((pipeline.settings.processed_dir).rglob("*.csv")) == []
        assert not SourceFile.get_by_id(row.id).disposed
        assert _moved() == []
        assert Disposal.select().count() == 0  # nothing left for a later call to finish
    finally:
        pipeline.close()


def test_a_file_taken_away_as_it_moves_is_not_a_blocked_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Gone from the inbox before it could be moved: nothing moved, nothing marked, and no
    folder reported as refusing files (the folders are fine)."""
    pipeline = Pipeline.open(tmp_path)
    try:
        source = pipeline.drop(NAME, report(random_peaks(random.Random(1))))
        [row] = pipeline.take(NAME)
        _while_moving(monkeypatch, source, lambda path: path.unlink())
        assert pipeline.ingest([row]) == {row.id: "ingested"}
        assert [b for b in blocked.status() if str(tmp_path) in str(b["folder"])] == []
        assert not SourceFile.get_by_id(row.id).disposed
        assert _moved() == []
        assert Disposal.select().count() == 0
    finally:
        pipeline.close()


def test_a_new_file_made_where_a_changed_one_goes_back_is_never_overwritten(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer appends to the file as it moves, then makes a new file at its path just
    before the changed one would go back: both the new file and the changed one are kept."""
    pipeline = Pipeline.open(tmp_path)
    try:
        source, row = _appended_to_as_it_moves(pipeline, monkeypatch)
        newest = b"the writer's next file\n"
        moving_back = os.replace, os.link

        def before_putting_back(real: Callable[..., None]) -> Callable[..., None]:
            def call(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
                if Path(dst) == source:
                    source.write_bytes(newest)
                real(src, dst)
            return call

        monkeypatch.setattr(os, "replace", before_putting_back(moving_back[0]))
        monkeypatch.setattr(os, "link", before_putting_back(moving_back[1]))
        assert pipeline.ingest([row]) == {row.id: "ingested"}
        assert source.read_bytes() == newest
        [kept] = list(pipeline.settings.processed_dir.rglob("*.csv"))
        assert kept.read_bytes().endswith(b"more,1\n")
    finally:
        pipeline.close()


def test_without_hard_links_a_changed_file_still_goes_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a file system without hard links (FAT, some shares) the file goes back by a rename."""
    def no_links(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    test_a_file_appended_to_as_it_moves_goes_back_to_the_inbox_unmarked(tmp_path, monkeypatch)
