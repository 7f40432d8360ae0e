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


def test_the_observer_still_hears_what_the_gate_relies_on(tmp_path: Path) -> None:
    """The observer is told which events to deliver (the rest are dropped before they cost a
    dispatch); inotify must still report opens, writes, closes, renames and new folders, and
    folders deleted (so their watches are forgotten). Should a watchdog release map the
    filter to a narrower mask, this fails instead of writers' files being taken early."""
    if not sys.platform.startswith("linux"):
        pytest.skip("inotify is Linux only")
    from watchdog.observers.inotify_c import InotifyConstants as C

    settings = Settings(inbox=tmp_path / "inbox", data_dir=tmp_path / "data")
    database = db.open_database(settings)
    w = watcher.Watcher(settings, open_queue(settings))
    w.start()
    try:
        assert w._observer is not None
        [emitter] = list(w._observer.emitters)
        mask = emitter.get_event_mask_from_filter()  # type: ignore[attr-defined]
        for flag in (C.IN_OPEN, C.IN_MODIFY, C.IN_ATTRIB, C.IN_CLOSE_WRITE, C.IN_CLOSE_NOWRITE,
                     C.IN_CREATE, C.IN_MOVED_FROM, C.IN_MOVED_TO, C.IN_DELETE, C.IN_DELETE_SELF):
            assert mask & flag, f"inotify flag {flag:#x} is no longer asked for"
    finally:
        w.stop()
        database.close()


def test_a_file_written_and_closed_in_the_inbox_is_a_candidate_marked_as_its_writer_left_it(
        tmp_path: Path) -> None:
    """Open, write, close: the candidate is marked writing while open and closed after; a file
    moved out of the inbox is not made a candidate again."""
    if not sys.platform.startswith("linux"):
        pytest.skip("inotify is Linux only")
    import time

    settings = Settings(inbox=tmp_path / "inbox", data_dir=tmp_path / "data",
                        stable_seconds=60.0, closed_stable_seconds=60.0)
    database = db.open_database(settings)
    w = watcher.Watcher(settings, open_queue(settings))
    w.start()
    path = settings.inbox.resolve() / "run.csv"

    def writing() -> bool | None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            cand = w._pending.get(str(path))
            if cand is not None and cand.writing is not None:
                return cand.writing
            time.sleep(0.01)
        return None

    try:
        fh = open(path, "w")  # noqa: SIM115  # held open across the checks
        fh.write("a,b\n")
        fh.flush()
        assert writing() is True
        fh.close()
        deadline = time.monotonic() + 5
        while w._pending[str(path)].writing and time.monotonic() < deadline:
            time.sleep(0.01)
        assert w._pending[str(path)].writing is False
        w._pending.clear()
        path.rename(tmp_path / "elsewhere.csv")
        time.sleep(0.3)
        assert str(path) not in w._pending
    finally:
        w.stop()
        database.close()
