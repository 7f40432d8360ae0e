"""The watcher holds at most half the backlog as candidates; a file turned away for want of room
(its event, or a look through its new folder cut short) is nominated once there is room again,
by looking through the folders that held such files: a burst of folders needs no scan of the
whole inbox, and nothing turned away is missed. Real folders, a real database."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.consume.queue import open_queue
from worker.intake.watcher import Watcher
from worker.record import db
from worker.settings import Settings


@contextmanager
def watcher(root: Path, backlog: int, inbox: str = "inbox") -> Iterator[Watcher]:
    """A watcher on ``root/inbox`` that is not started: the test plays its gate loop."""
    s = Settings(inbox=root / inbox, data_dir=root / "data", intake_max_backlog=backlog)
    s.inbox.mkdir(parents=True, exist_ok=True)
    database = db.open_database(s)
    try:
        yield Watcher(s, open_queue(s))
    finally:
        database.close()


class Played:
    """What the gate loop does with candidates and room, as ``Watcher._run`` does it: each
    step takes some candidates, which leave the inbox at once (room appears), then refills or
    scans as the watcher would."""

    def __init__(self, w: Watcher) -> None:
        self.w = w
        self.nominated: set[str] = set()
        self.whole_scans = 0

    def take(self, count: int) -> None:
        w = self.w
        self.nominated |= set(w._pending)
        for path in list(w._pending)[:count]:
            w._forget(path)
            Path(path).unlink(missing_ok=True)  # an event may come after it left
        if w._overflow and len(w._pending) <= w._max_pending // 2:
            w._refill()
        if w._scan_requested.is_set():
            w._scan_requested.clear()
            self.whole_scans += 1
            w.scan()
        self.nominated |= set(w._pending)

    def drain(self) -> None:
        for _ in range(10_000):
            self.take(len(self.w._pending))
            if not self.w._pending and not self.w._overflow:
                return
        raise AssertionError("candidates never ran out")


def files_in(folder: Path, names: list[str]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        (folder / name).write_bytes(name.encode())
        paths.append(os.fspath(folder / name))
    return paths


def test_a_burst_of_folders_is_taken_whole_without_scanning_the_inbox(tmp_path: Path) -> None:
    with watcher(tmp_path, backlog=20) as w:  # 10 candidates at most
        everything: list[str] = []
        for k in range(8):
            folder = w.inbox / f"run {k}"
            everything += files_in(folder, [f"inj{i}.txt" for i in range(7)])
            w._look_through_folder(folder)  # as a folder moved into the inbox is
        assert len(w._pending) == 10
        played = Played(w)
        played.drain()
        assert played.nominated == set(everything)
        assert played.whole_scans == 0


def test_a_file_turned_away_from_the_inbox_itself_is_found_by_a_whole_scan(
        tmp_path: Path) -> None:
    with watcher(tmp_path, backlog=4) as w:  # 2 candidates at most
        loose = files_in(w.inbox, [f"loose{i}.txt" for i in range(5)])
        for path in loose:
            w.nominate(path)  # their events
        assert len(w._pending) == 2
        played = Played(w)
        played.drain()
        assert played.nominated == set(loose)
        assert played.whole_scans >= 1


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), backlog=st.integers(2, 12),
       tree=st.lists(st.tuples(st.sampled_from(["", "a", "b", "a/x", "a/y", "c/d/e"]),
                               st.integers(1, 6), st.booleans()),
                     min_size=1, max_size=6))
def test_nothing_turned_away_for_want_of_room_is_missed(
        tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, backlog: int,
        tree: list[tuple[str, int, bool]]) -> None:
    """Each folder either is looked through (moved in) or its files bring events; events and
    looks come in any order, and room appears between them, a few candidates at a time."""
    root = tmp_path_factory.getbasetemp() / "watcher-room"  # one database for every example
    root.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp, \
            watcher(root, backlog, inbox=os.path.basename(tmp)) as w:
        everything: list[str] = []
        arrivals: list[tuple[str, str]] = []
        for n, (sub, count, looked) in enumerate(tree):
            folder = w.inbox / sub if sub else w.inbox
            paths = files_in(folder, [f"f{n}_{i}.txt" for i in range(count)])
            everything += paths
            if looked and sub:
                arrivals.append(("look", os.fspath(folder)))
            else:
                arrivals += [("event", path) for path in paths]
        arrivals = data.draw(st.permutations(arrivals))
        played = Played(w)
        for kind, path in arrivals:
            if kind == "look":
                w._look_through_folder(path)
            else:
                w.nominate(path)
            played.take(data.draw(st.integers(0, 3)))
        played.drain()
        assert played.nominated == set(everything)
