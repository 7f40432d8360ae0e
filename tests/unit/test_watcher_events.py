"""How the watcher uses watchdog's inotify observer: a guard against a watchdog release
silently undoing what the watcher relies on."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from worker.consume.queue import open_queue
from worker.intake import watcher
from worker.record import db
from worker.settings import Settings


def test_the_inotify_move_pairing_wait_is_short_once_a_watcher_starts(tmp_path: Path) -> None:
    """watchdog holds every event behind a file moved out of the inbox while it waits for the
    other half of the move; each disposal is such a move, so with watchdog's 0.5 s a drop just
    after a disposal waited up to 0.5 s. Should a watchdog release move that wait elsewhere,
    this fails instead of single drops quietly getting slower."""
    if not sys.platform.startswith("linux"):
        pytest.skip("inotify is Linux only")
    grouper = watcher.move_grouper()
    assert grouper is not None, "watchdog's inotify move pairing is no longer where it was"
    settings = Settings(inbox=tmp_path / "inbox", data_dir=tmp_path / "data")
    database = db.open_database(settings)
    w = watcher.Watcher(settings, open_queue(settings))
    w.start()
    try:
        assert grouper.delay == watcher.MOVE_PAIRING_SECONDS  # type: ignore[attr-defined]
        assert w.observer_alive()
    finally:
        w.stop()
        database.close()
