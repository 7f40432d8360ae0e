"""Watching the inbox: notice files, wait until each is complete, store it, register, enqueue.

Events from watchdog (and a scan at start-up plus a periodic rescan, for events that never come)
only nominate paths. A path is taken once its size and mtime have not changed for the stability
window and it can be opened; its bytes are read once, hashed, stored durably, registered in the
ledger and enqueued — in that order, so a crash between any two steps is repaired by the next scan
(the raw store and the ledger are both idempotent by SHA-256).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import importlib
import logging
import os
import re
import stat
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peewee import InterfaceError, OperationalError
from watchdog import events
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from worker.consume import blocked, dispose
from worker.consume.queue import Queue
from worker.intake.groups import folder_of
from worker.record import db, heartbeat, ledger, sql, store
from worker.record.models import FINAL_STATES, DuplicateCopy, RawBlob, SourceFile, database
from worker.settings import Settings

log = logging.getLogger(__name__)

GATE_INTERVAL = 0.05
# Stable files stored and registered per transaction; a burst shares its commits and flushes,
# and the watcher waits for the database's write lock once per batch: with consumers holding
# it for whole batches of their own, batches of up to 1,024 files registered a 20,000-file
# burst in 11-13 s against 19 s with 256.
INTAKE_FIRST = 128
INTAKE_BATCH = 1024
INTAKE_BYTES = 64 * 1024 * 1024
DISPOSE_POLL = 1.0  # seconds between looks for own files made final by consumers elsewhere
# A file left open by its writer but unchanged this long is taken anyway (a hung exporter must
# not hold a file back for ever; a cut-off table is still rejected by its parser).
WRITER_TIMEOUT = 600.0
# While the consumers' backlog is full (intake_max_backlog), look at the waiting files this
# seldom: each look is an lstat of every candidate.
BACKLOG_WAIT = 0.5
# watchdog holds each IN_MOVED_FROM (inotify) up to 0.5 s to pair it with its IN_MOVED_TO, and
# every later event waits behind it (watchdog issue #649). Each file disposed of leaves the
# inbox by such a move, so a file dropped just after it was noticed up to 0.5 s late: 0.2 s on
# every benchmark single drop. Both halves of a rename come in one read, and the handler needs
# no pair anyway (a deleted source is ignored; the destination is nominated either way).
MOVE_PAIRING_SECONDS = 0.01
TROUBLE_LISTED = 20  # paths of held files named in /status; the count covers all of them
# How often links and pipes reported in the inbox are looked at again (to see them gone), and
# files left in an inbox folder renamed away are counted.
INBOX_CHECK = 1.0
LEFT_COUNTED = 1000  # files counted in a replaced inbox's old folder, at most


@dataclass(slots=True)  # a burst holds one per file
class Candidate:
    size: int
    mtime_ns: int
    since: float
    detected_at: float
    # What close-after-write events (inotify) say: True = written to and not closed yet,
    # False = closed (or renamed into place) since its last write, None = nothing known.
    writing: bool | None = None


@dataclass(frozen=True)
class Trouble:
    """Why a complete file could not be taken: ``unreadable`` (no permission to read it) or
    ``unregistered`` (its ledger row could not be written)."""

    kind: str
    reason: str


@dataclass
class Held:
    """A file held back by a Trouble, since when, for /status and readiness."""

    trouble: Trouble
    since: float


@dataclass
class Replaced:
    """The folder that was the inbox until it was renamed away, kept open to see what is left in
    it (``fd``) until it is empty or removed."""

    fd: int
    at: float
    where: str = ""  # its path now (read from fd in the gate thread, shown by others)
    files_left: int = 0


@dataclass
class WatchStats:
    observer_alive: bool = False
    observer_restarts: int = 0
    inbox_replacements: int = 0
    last_event: float | None = None
    last_scan: float | None = None
    pending: int = 0
    registered: int = 0
    errors: list[str] = field(default_factory=list)


# Where the platform reports opens and closes (inotify), a file opened or written to and not
# closed yet is not taken, however long its writer pauses; one closed, created without an open
# (moved in from elsewhere, or found in a new folder) or renamed into place is complete, and
# only a short window guards it against a reopen. None: the event says nothing of its writer.
_WRITING: dict[str, bool | None] = {
    "created": False, "opened": True, "modified": True, "closed": False,
    "closed_no_write": False, "moved": False}
# The events the handler acts on; the observer drops every other kind before it queues and
# dispatches it: a folder's "modified" for each change in it, a file's "deleted" (a disposal
# moves each file out of the inbox). Folders deleted are asked for all the same, so that the
# inotify observer still hears of them and forgets their watches.
_EVENTS = [getattr(events, name) for name in (
    "FileCreatedEvent", "FileMovedEvent", "FileModifiedEvent", "FileAttribEvent",
    "FileOpenedEvent", "FileClosedEvent", "FileClosedNoWriteEvent",
    "DirCreatedEvent", "DirMovedEvent", "DirDeletedEvent") if hasattr(events, name)]


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def dispatch(self, event: FileSystemEvent) -> None:
        # In place of watchdog's, which calls on_any_event and then an on_<kind> method per
        # event: a burst brings several events for each file.
        self.on_any_event(event)

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            if event.event_type in ("created", "moved"):
                # Files may be in it before its watch is: look through it (it alone).
                folder = getattr(event, "dest_path", "") or event.src_path
                self.watcher.scan_soon(Path(os.fsdecode(folder)))
            return
        if event.event_type == "deleted":
            return  # nothing to take (a pending one is forgotten by the gate's next look)
        path = getattr(event, "dest_path", "") or event.src_path
        self.watcher.nominate(os.fsdecode(path), writing=_WRITING.get(event.event_type))


class Watcher:
    """Owns one inbox: its observer, the stability gate, registration and disposal."""

    def __init__(self, settings: Settings, queue: Queue) -> None:
        self.settings = settings
        self.inbox = settings.inbox.resolve()
        self.queue = queue
        self.stats = WatchStats()
        # Keyed by the path as a string: a burst holds one per file, and a Path object (its
        # parts, their interned names, its string) took ~4 times the memory of the string.
        self._pending: dict[str, Candidate] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._scan_requested = threading.Event()
        self._folders: set[Path] = set()  # new folders to look through (scan_soon)
        self._observer: Observer | PollingObserver | None = None
        self._thread: threading.Thread | None = None
        self._known: dict[str, tuple[int, int]] = {}  # by ledger path (ledger.ledger_path)
        self._held_back: dict[str, Held] = {}  # by path on disk: unreadable or unregistered
        # Links, pipes, sockets and devices in the inbox, never read: path -> what it is.
        self._special: dict[str, str] = {}
        self._inbox_id: tuple[int, int] | None = None  # (device, inode) of the folder watched
        self._inbox_fd: int | None = None  # the folder watched, open where the OS allows it
        self._replaced: Replaced | None = None
        # Bytes stored in a pack for a file whose registration then failed: the next attempt
        # registers these places instead of writing the bytes into a new pack each time.
        self._kept: dict[str, store.Location] = {}
        # Candidates held at once: half the backlog allowed. More files wait in the inbox, on
        # disk, and are nominated once half of these are taken (_refill), so memory does not grow
        # with a backlog of years of old exports (a 100,000-file catch-up peaked at 167 MB in
        # this process with no bound, and at 86 MB with one).
        self._max_pending = max(1, settings.intake_max_backlog // 2)
        self._overflow = False  # a file was not nominated for want of room (_refill)
        # Folders in the inbox holding what was turned away for want of room (a file's event,
        # or a look through the folder cut short), in order: looked through again once there
        # is room. One folder per file would not bound memory; a folder whose files were all
        # taken meanwhile costs a look at each. What was turned away from the inbox itself, or
        # from more folders than _max_pending, is found by a scan of the whole inbox instead.
        self._look_again: dict[str, None] = {}
        self._rescan_all = False
        self._held = False  # the last gate pass left complete files for want of backlog room
        self._close_events = False
        self.owner = ledger.owner_id("watcher")
        # Every event asks wanted(): the globs compiled once, matched as fnmatch would.
        self._root = os.path.join(os.fspath(self.inbox), "")
        self._excluded = _globs(settings.exclude)
        self._included = _globs(settings.include)

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self.inbox.mkdir(parents=True, exist_ok=True)
        self._start_observer()
        self._scan_requested.set()  # the start-up scan: files dropped while we were down
        self._thread = threading.Thread(target=self._run, name="watcher-gate", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=30)
        for fd in (self._inbox_fd, self._replaced.fd if self._replaced else None):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._inbox_fd = None
        self._replaced = None

    def _start_observer(self) -> None:
        if not self.settings.polling:
            _pair_moves_quickly()
        observer = PollingObserver(timeout=1.0) if self.settings.polling else Observer()
        observer.schedule(_Handler(self), str(self.inbox), recursive=True, event_filter=_EVENTS)
        observer.daemon = True
        observer.start()
        self._observer = observer
        self._note_inbox()
        self._close_events = type(observer).__name__ == "InotifyObserver"
        self.stats.observer_alive = True

    def observer_alive(self) -> bool:
        # When its folder vanishes (a network share drops) the emitter thread ends but the
        # observer's own thread runs on, delivering nothing: alive means both are.
        # And its folder must still be the inbox: one renamed away keeps its watch (and one
        # removed, while held open here, too), and a folder made at its path is not watched.
        observer = self._observer
        return (observer is not None and observer.is_alive()
                and all(e.is_alive() for e in list(observer.emitters))
                and self._inbox_id == _identity(self.inbox))

    def intake(self) -> dict[str, Any]:
        """For /status, /metrics and readiness: files held as candidates, whether files wait in
        the inbox beyond them or for room in the backlog (intake_max_backlog), and the complete
        files it cannot take (unreadable, or failing to register), with readiness's verdict."""
        held = sorted(list(self._held_back.items()), key=lambda item: item[1].since)
        unreadable = [ledger.ledger_path(self._rel(path))[0] for path, h in held
                      if h.trouble.kind == "unreadable"]
        unregistered = [{"path": ledger.ledger_path(self._rel(path))[0],
                         "reason": h.trouble.reason}
                        for path, h in held if h.trouble.kind == "unregistered"]
        special = sorted(self._special.items())
        replaced = self._replaced
        return {"candidates": len(self._pending), "waiting": self._overflow or self._held,
                "unreadable": len(unreadable), "unreadable_paths": unreadable[:TROUBLE_LISTED],
                "unregistered": len(unregistered),
                "unregistered_files": unregistered[:TROUBLE_LISTED],
                "problem": self._intake_problem(held),
                "special_files": len(special),
                "special_paths": [{"path": self._shown(path), "kind": kind}
                                  for path, kind in special[:TROUBLE_LISTED]],
                "inbox_replacements": self.stats.inbox_replacements,
                "inbox_replaced": None if replaced is None else {
                    "at": _iso(replaced.at), "old_folder": replaced.where,
                    "files_left": replaced.files_left},
                "problems": {"special_files": self._special_problem(special),
                             "inbox_replaced": self._replaced_problem(replaced)}}

    def _special_problem(self, special: list[tuple[str, str]]) -> str | None:
        """Links, pipes, sockets or devices in the inbox: someone has to put the files
        themselves there."""
        if not special:
            return None
        named = ", ".join(f"{self._shown(path)} ({kind})" for path, kind in special[:5])
        more = f" and {len(special) - 5} more" if len(special) > 5 else ""
        one = len(special) == 1
        return (f"{len(special)} entr{'y' if one else 'ies'} in the inbox "
                f"{'is not a file and is' if one else 'are not files and are'} never read: "
                f"{named}{more}; put the file itself there instead, or remove it")

    def _replaced_problem(self, replaced: Replaced | None) -> str | None:
        """Files left in an inbox folder renamed away are never taken unless moved back."""
        if replaced is None:
            return None
        return (f"the inbox {self.inbox} was replaced by a new folder at "
                f"{_iso(replaced.at)}; the old folder, now {replaced.where}, still holds "
                f"{replaced.files_left}{'+' if replaced.files_left >= LEFT_COUNTED else ''} "
                f"file(s) that will never be taken: move them into {self.inbox}, or remove "
                f"the old folder")

    def _shown(self, path: str) -> str:
        return ledger.ledger_path(self._rel(path))[0]

    def _intake_problem(self, held: list[tuple[str, Held]]) -> str | None:
        """Files held back longer than two rescans: a writer's brief lock has passed by then,
        so an operator has to look (permissions, or the reason logged)."""
        grace = 2 * self.settings.rescan_seconds
        now = time.time()
        stuck = [(path, h) for path, h in held if now - h.since >= grace]
        if not stuck:
            return None
        path, first = stuck[0]
        return (f"{len(stuck)} file(s) in the inbox could not be taken for over {grace:g} s, "
                f"e.g. {ledger.ledger_path(self._rel(path))[0]}: {first.trouble.reason}")

    def scan_soon(self, folder: Path | None = None) -> None:
        """Ask for a scan of the whole inbox, or of one folder in it."""
        if folder is None:
            self._scan_requested.set()
        else:
            with self._lock:
                self._folders.add(folder)

    # --- nomination ------------------------------------------------------------------------
    def wanted(self, path: str | Path) -> bool:
        """Inside the inbox, not excluded (hidden, temporary, partial names) and included."""
        text = os.fspath(path)
        if not text.startswith(self._root):
            return False
        parts = [os.path.normcase(part) for part in text[len(self._root):].split(os.sep)]
        if not parts[-1] or any(self._excluded.match(part) for part in parts):
            return False
        return self._included.match(parts[-1]) is not None

    def nominate(self, path: str | Path, writing: bool | None = None) -> None:
        """Make ``path`` a candidate; ``writing`` updates what close events say of it."""
        path = os.fspath(path)
        self.stats.last_event = time.time()
        with self._lock:
            cand = self._pending.get(path)  # already wanted: a file has several events
        if cand is None and not self.wanted(path):
            return
        with self._lock:
            cand = self._pending.get(path)
            if cand is None and len(self._pending) >= self._max_pending:
                self._overflow = True
                self._turned_away(os.path.dirname(path))
                return
            if cand is None:
                now = time.time()
                try:  # the window starts at the event, not at the gate's next pass
                    st = os.lstat(path)
                    size, mtime_ns = st.st_size, st.st_mtime_ns
                except OSError:
                    size = mtime_ns = -1
                if self._registered(path, size, mtime_ns):
                    return  # our own read of it (opened, closed) or a rescan: nothing new
                cand = self._pending[path] = Candidate(size, mtime_ns, now, now)
            if writing is not None and self._close_events:
                cand.writing = writing

    # --- the gate loop ---------------------------------------------------------------------
    def _run(self) -> None:
        next_scan = next_dispose = next_inbox = 0.0
        beat = heartbeat.loop("watcher")
        backoff = db.Backoff(first=1.0, most=10.0)
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                with self._lock:
                    folders, self._folders = self._folders, set()
                if self._scan_requested.is_set() or now >= next_scan:
                    self._scan_requested.clear()
                    self.scan()  # disposes too
                    next_scan = now + self.settings.rescan_seconds
                    next_dispose = now + DISPOSE_POLL
                else:
                    for folder in folders:
                        self._look_through_folder(folder)
                if now >= next_dispose:
                    self._dispose_finished()
                    next_dispose = now + DISPOSE_POLL
                if now >= next_inbox:
                    self._recheck_special()
                    self._count_left()
                    next_inbox = now + INBOX_CHECK
                self._check_observer()
                full = self._held = self._gate()
                if self._overflow and len(self._pending) <= self._max_pending // 2:
                    self._refill()
                beat.ok()
                backoff.succeeded()
            except (OperationalError, InterfaceError) as exc:  # database busy or unreachable
                # A dead connection is replaced at the next query (db.py); until the database
                # answers, readiness names this loop and its error.
                beat.failed(f"database: {exc}")
                wait = backoff.failed()
                log.warning("watcher cannot reach the database (%s); trying again in %.0f s",
                            exc, wait)
                self._stop.wait(wait)
                full = False
            except Exception as exc:  # the watcher must outlive any one bad file or outage
                beat.failed(exc)
                log.exception("watcher loop error; continuing")
                self._stop.wait(backoff.failed())
                full = False
            self._stop.wait(BACKLOG_WAIT if full else GATE_INTERVAL)
        heartbeat.forget("watcher")

    def _check_observer(self) -> None:
        if self.observer_alive():
            return
        self.stats.observer_alive = False
        if not self.inbox.is_dir():
            return  # restarting would fail; readiness reports the missing inbox
        if self._inbox_id not in (None, _identity(self.inbox)):
            self._inbox_replaced()
        else:
            log.error("file observer died; restarting it")
            self.stats.observer_restarts += 1
        if self._observer is not None:
            self._observer.stop()  # its thread may outlive its dead emitter
        self._start_observer()
        self._scan_requested.set()

    def _note_inbox(self) -> None:
        """Remember which folder the observer was set on (and keep it open, where the OS
        allows, to find it again should it be renamed away)."""
        if self._inbox_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._inbox_fd)
        self._inbox_id, self._inbox_fd = _identity(self.inbox), _open_folder(self.inbox)

    def _inbox_replaced(self) -> None:
        """The inbox path is another folder than the one watched (the caller re-arms the
        observer on it): said, counted, and the old folder followed until nothing is left in
        it."""
        old = self._inbox_fd
        self._inbox_fd = None
        self.stats.inbox_replacements += 1
        removed = old is not None and _removed(old)
        if old is None:  # a platform that cannot keep the folder open to follow it
            log.warning("the inbox %s is another folder now (renamed away, or removed and "
                        "made again); watching the new folder", self.inbox)
        elif removed:
            log.warning("the inbox %s was removed and made again; watching the new folder",
                        self.inbox)
        else:
            log.warning("the inbox %s was replaced by a new folder (the old one is now %s); "
                        "watching the new folder, files left in the old one are not taken",
                        self.inbox, _where(old))
        if self._replaced is not None:
            os.close(self._replaced.fd)  # replaced twice: the latest old folder is followed
            self._replaced = None
        if old is not None and removed:
            os.close(old)
        elif old is not None:
            self._replaced = Replaced(old, time.time())
            self._count_left()

    def _count_left(self) -> None:
        """Files still in the replaced inbox's old folder; forget it once there are none."""
        replaced = self._replaced
        if replaced is None:
            return
        replaced.where = _where(replaced.fd)
        replaced.files_left = 0 if _removed(replaced.fd) else self._files_in(replaced.fd)
        if replaced.files_left == 0:
            log.info("the inbox's old folder %s holds no files now", replaced.where)
            os.close(replaced.fd)
            self._replaced = None

    def _files_in(self, fd: int) -> int:
        """Wanted files under an open folder (up to LEFT_COUNTED), as they would be if it were
        the inbox."""
        found = 0
        for top, _, files, _ in os.fwalk(".", dir_fd=fd):
            rel = os.path.normpath(top)
            for name in files:
                path = os.path.join(self._root, name if rel == "." else os.path.join(rel, name))
                if self.wanted(path):
                    found += 1
                    if found >= LEFT_COUNTED:
                        return found
        return found

    def scan(self) -> None:
        """Nominate every file under the inbox (start-up scan and periodic rescan)."""
        if not self.inbox.is_dir():
            return
        self._load_known()
        if not self._look_through(self.inbox):
            with self._lock:
                self._rescan_all = True
        self.stats.last_scan = time.time()
        self._dispose_finished()

    def _note_special(self, path: str, mode: int) -> None:
        """A link, pipe, socket or device in the inbox: never read (a link may point anywhere,
        a pipe blocks its reader), said once, reported until it is gone."""
        kind = _kind(mode)
        if self._special.get(path) == kind:
            return
        self._special[path] = kind
        log.warning("%s in the inbox is a %s, not a file: it is never read; put the file "
                    "itself there instead, or remove it", self._shown(path), kind)

    def _recheck_special(self) -> None:
        """Forget the special entries that are gone (or are files now: the scan took them)."""
        for path, kind in list(self._special.items()):
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                mode = None
            if mode is None or not _is_special(mode):
                del self._special[path]
                log.info("%s (a %s) is no longer in the inbox", self._shown(path), kind)

    def _turned_away(self, folder: str) -> None:
        """Remember a folder holding files not nominated for want of room (under self._lock)."""
        if folder in self._look_again:
            return
        if len(self._look_again) < self._max_pending and folder != os.fspath(self.inbox):
            self._look_again[folder] = None
        else:
            self._rescan_all = True

    def _refill(self) -> None:
        """Room again: look through the folders holding what was turned away for want of it,
        or scan the whole inbox."""
        with self._lock:
            self._overflow = False
            folders, self._look_again = self._look_again, {}
            everything, self._rescan_all = self._rescan_all, False
        if everything:
            self._scan_requested.set()
            return
        for folder in folders:
            self._look_through_folder(folder)

    def _look_through_folder(self, folder: str | Path) -> None:
        """``_look_through`` a folder in the inbox; remembered when cut short for want of
        room, to be looked through again once there is."""
        if not self._look_through(folder):
            with self._lock:
                self._turned_away(os.fspath(folder))

    def _look_through(self, top: str | Path) -> bool:
        """Nominate every file under ``top`` that is not registered as it is; False when cut
        short for want of room (half the candidates taken, it is looked through again)."""
        stack = [os.fspath(top)]
        while stack:
            if self._overflow:
                return False
            folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if self._overflow:
                    return False
                if entry.is_dir(follow_symlinks=False):
                    if self.wanted(entry.path):
                        stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    self.nominate(entry.path)
                elif self.wanted(entry.path):
                    with contextlib.suppress(OSError):
                        self._note_special(entry.path, entry.stat(follow_symlinks=False).st_mode)
        return True

    def _registered(self, path: str, size: int, mtime_ns: int) -> bool:
        """Registered with this very size and mtime (and waiting to leave the inbox)."""
        return self._known.get(ledger.ledger_path(self._rel(path))[0]) == (size, mtime_ns)

    def _rel(self, path: str) -> str:
        """A wanted file's path relative to the inbox, with '/' separators, as the OS gives it
        (ledger.ledger_path makes it the ledger's)."""
        return path[len(self._root):].replace(os.sep, "/")

    def _load_known(self) -> None:
        """Registered files still in the inbox, so a rescan does not read them again.

        With ``after_ingest = "keep"`` finished files stay too; without them here every rescan
        would read each kept file again and record it as a duplicate of itself.
        """
        rows = SourceFile.select(SourceFile.path, SourceFile.size, SourceFile.mtime_ns).where(
            SourceFile.origin == self.settings.node).order_by(SourceFile.id)
        if self.settings.after_ingest != "keep":
            rows = rows.where(SourceFile.disposed == False)  # noqa: E712
        # Plain tuples, not cached: during a catch-up this is every file in flight, and model
        # instances held until the last one is read took tens of MB.
        self._known = {path: (size, mtime_ns) for path, size, mtime_ns in rows.tuples().iterator()}
        # Duplicate copies waiting in the inbox for their original (with "keep", all of them):
        # read again, each would be recorded as one more copy.
        copies = DuplicateCopy.select(DuplicateCopy.path, DuplicateCopy.size,
                                      DuplicateCopy.mtime_ns).where(
            DuplicateCopy.origin == self.settings.node)
        if self.settings.after_ingest != "keep":
            copies = copies.where(DuplicateCopy.disposed == False)  # noqa: E712
        self._known.update((path, (size, mtime_ns))
                           for path, size, mtime_ns in copies.tuples().iterator())

    def _dispose_finished(self) -> None:
        """Final rows whose source is still in this inbox leave it now.

        Crash repair on every scan, and the normal path when consumers run elsewhere (they
        cannot reach this inbox): polled every DISPOSE_POLL seconds by the index on origin.
        The same poll finishes disposals a crash, outage or full disk interrupted (their
        recorded destination), and lets rejected files (with polling, all) go once settled.
        """
        rows = SourceFile.select().where(SourceFile.origin == self.settings.node,
                                         SourceFile.disposed == False,  # noqa: E712
                                         SourceFile.state.in_(FINAL_STATES))
        # Read them all first: writing while a SELECT is still open on this connection pins an
        # old WAL snapshot, and SQLite then fails the write at once with "database is locked".
        waiting = list(rows)
        blocked.keep_only({row.id for row in waiting})  # retried or disposed of elsewhere
        dispose.dispose_rows(self.settings, waiting)
        dispose.dispose_copies(self.settings)

    def _gate(self) -> bool:
        """Take the candidates that are complete, as far as the backlog has room for them;
        True when some had to wait for room."""
        now = time.time()
        ready: list[tuple[str, Candidate]] = []
        with self._lock:
            items = list(self._pending.items())
        for item in items:
            path, cand = item
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                self._forget(path)
                continue
            if not stat.S_ISREG(st.st_mode):  # one lstat per pass: a burst has thousands
                if _is_special(st.st_mode):
                    self._note_special(path, st.st_mode)
                self._forget(path)
                continue
            if (st.st_size, st.st_mtime_ns) != (cand.size, cand.mtime_ns):
                cand.size, cand.mtime_ns, cand.since = st.st_size, st.st_mtime_ns, now
                continue
            quiet = now - cand.since
            if cand.writing is None:
                window = self.settings.stable_seconds
            elif cand.writing:
                window = WRITER_TIMEOUT
            else:  # its writer closed it: the window only guards against a reopen
                window = min(self.settings.stable_seconds, self.settings.closed_stable_seconds)
            if quiet >= window:
                ready.append(item)  # not a new pair: a burst has thousands
        units = self._units(items, ready, now)
        self.stats.pending = len(items)
        count = sum(len(unit) for unit in units)
        room = self.settings.intake_max_backlog - ledger.unfinished() if units else 0
        chosen: list[list[tuple[str, Candidate]]] = []
        taking = 0
        for unit in units:  # a folder is taken whole even where it overfills the backlog
            if taking >= room:
                break
            chosen.append(unit)
            taking += len(unit)
        for batch in _batches(chosen):
            self._take(batch)
        return count > room

    def _folder(self, path: str) -> str | None:
        """The instrument folder ``path`` lies in (``groups.folder_of``), cheaply for the many
        files that lie in none."""
        rel = self._rel(path)
        return folder_of(rel) if ".d/" in rel.lower() else None

    def _units(self, items: list[tuple[str, Candidate]], ready: list[tuple[str, Candidate]],
               now: float) -> list[list[tuple[str, Candidate]]]:
        """``ready`` as what is taken together: each loose file alone, each instrument folder
        (``groups``) whole, once every file in it (subfolders included, and the binary signals
        the instrument appends to for the whole run) is complete and none changed for
        ``stable_seconds``, closed or not: an instrument writes its files one after another."""
        groups: dict[str, list[Candidate]] = {}
        for path, cand in items:
            folder = self._folder(path)
            # A file held back (unreadable) holds up nothing else, its folder included.
            if folder is not None and path not in self._held_back:
                groups.setdefault(folder, []).append(cand)
        if not groups:
            return [[item] for item in ready]
        taken = {id(cand) for _, cand in ready}
        settled = {folder for folder, cands in groups.items()
                   if all(id(c) in taken for c in cands)
                   and now - max(c.since for c in cands) >= self.settings.stable_seconds}
        loose: list[tuple[str, Candidate]] = []
        together: dict[str, list[tuple[str, Candidate]]] = {}
        for path, cand in ready:
            folder = self._folder(path)
            if folder is None:
                loose.append((path, cand))
            elif folder in settled:
                together.setdefault(folder, []).append((path, cand))
        return [[item] for item in loose] + list(together.values())

    def _forget(self, path: str) -> None:
        with self._lock:
            self._pending.pop(path, None)
            if not self._pending:
                self._kept.clear()  # what a failed registration stored is not wanted again
        held = self._held_back.pop(path, None)
        if held is not None and held.trouble.kind == "unreadable" and os.path.exists(path):
            log.info("%s is readable now; taken", ledger.ledger_path(self._rel(path))[0])

    def _hold_back(self, path: str, cand: Candidate, trouble: Trouble) -> None:
        """Keep a file it cannot take as a candidate, say why once, and look again later."""
        now = time.time()
        held = self._held_back.get(path)
        if held is None or held.trouble.kind != trouble.kind:
            text = ledger.ledger_path(self._rel(path))[0]
            if trouble.kind == "unreadable":
                log.warning("cannot read %s (%s); it stays in the inbox and is taken once it "
                            "can be read", text, trouble.reason)
            else:
                log.error("cannot register %s: %s; it stays in the inbox, tried again every "
                          "%g s (rescan_seconds)", text, trouble.reason,
                          self.settings.rescan_seconds)
            self._held_back[path] = Held(trouble, now if held is None else held.since)
        # Unreadable: another stability window, so a file made readable is taken soon after;
        # a failing registration (not an outage: something in the file's own row) seldom.
        cand.since = now + (self.settings.rescan_seconds if trouble.kind == "unregistered"
                            else 0.0)

    def _take(self, ready: list[tuple[str, Candidate]]) -> None:
        """Store, register and enqueue a batch of stable files."""
        batch: list[tuple[str, str, Candidate]] = []
        for path, cand in ready:
            rel = self._rel(path)
            if self._known.get(ledger.ledger_path(rel)[0]) == (cand.size, cand.mtime_ns):
                self._forget(path)
            else:
                batch.append((path, rel, cand))
        try:
            outcomes = take_many(self.settings, batch, self.owner, self._kept)
        except (store.StoreError, OSError, OperationalError, InterfaceError) as exc:
            # Disk full, database busy or unreachable: leave them pending, try again later.
            log.warning("cannot take %d file(s) yet: %s", len(batch), exc)
            for _, _, cand in batch:
                cand.since = time.time() + min(30.0, self.settings.stable_seconds * 4 + 1)
            return
        new: list[int] = []
        for (path, _, cand), outcome in zip(batch, outcomes, strict=True):
            if outcome is None:
                continue  # changed while read: stays a candidate
            if isinstance(outcome, Trouble):
                self._hold_back(path, cand, outcome)
                continue
            self._forget(path)
            if outcome == "gone":
                continue
            row, is_new = outcome
            self._known[row.path] = (cand.size, cand.mtime_ns)
            # a duplicate copy waits in the inbox under its own path until its original is final
            self._known[ledger.ledger_path(self._rel(path))[0]] = (cand.size, cand.mtime_ns)
            if is_new:
                new.append(row.id)
        if new:
            self.stats.registered += len(new)
            try:
                self.queue.enqueue(new)
            except Exception as exc:
                # Registered but not enqueued (queue full or unreachable): let the reconciler
                # take them on its next pass rather than after a whole lease.
                log.warning("cannot enqueue %d file(s): %s; the reconciler will", len(new), exc)
                with contextlib.suppress(OperationalError, InterfaceError):
                    ledger.expire(new)


def _is_special(mode: int) -> bool:
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISFIFO(mode):
        return "named pipe"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISBLK(mode) or stat.S_ISCHR(mode):
        return "device"
    return "special file"


def _identity(folder: Path) -> tuple[int, int] | None:
    """(device, inode) of a folder, None when it is not there."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _open_folder(folder: Path) -> int | None:
    """The folder open for reading, where the OS opens folders (not Windows)."""
    try:
        return os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return None


def _removed(fd: int) -> bool:
    try:
        return os.fstat(fd).st_nlink == 0
    except OSError:
        return True


def _where(fd: int) -> str:
    """Where an open folder is now (Linux names it; elsewhere it is not known)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "(renamed; its new name is not known here)"


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def move_grouper() -> type | None:
    """The class of watchdog's inotify observer that holds moves for pairing (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    for module, name in (("watchdog.observers.inotify_move_event_grouper",  # watchdog >= 7
                          "InotifyMoveEventGrouper"),
                         ("watchdog.observers.inotify_buffer", "InotifyBuffer")):  # 4 to 6
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    return None


def _pair_moves_quickly() -> None:
    """MOVE_PAIRING_SECONDS for the inotify observers created from now on."""
    grouper = move_grouper()
    if grouper is not None:
        grouper.delay = MOVE_PAIRING_SECONDS  # type: ignore[attr-defined]


def _globs(patterns: list[str]) -> re.Pattern[str]:
    """One regular expression matching a (normcase'd) name that any of ``patterns`` matches."""
    if not patterns:
        return re.compile(r"(?!)")
    return re.compile("|".join(f"(?:{fnmatch.translate(os.path.normcase(p))})"
                               for p in patterns))


def _batches(units: list[list[tuple[str, Candidate]]]
             ) -> Iterator[list[tuple[str, Candidate]]]:
    """Stable files in intake batches of at most INTAKE_BYTES bytes (at least one file each:
    a batch's bytes are all in memory until its ledger rows commit). The first batch of a pass
    has INTAKE_FIRST files, so consumers start at once, and each next one twice as many, up to
    INTAKE_BATCH, so a long burst waits for the write lock seldom. A unit (an instrument
    folder's files) is never split between batches: its files are registered together."""
    batch: list[tuple[str, Candidate]] = []
    size, limit = 0, INTAKE_FIRST
    for unit in units:
        unit_size = sum(max(c.size, 0) for _, c in unit)
        if batch and (len(batch) + len(unit) > limit or size + unit_size > INTAKE_BYTES):
            yield batch
            batch, size, limit = [], 0, min(limit * 2, INTAKE_BATCH)
        batch.extend(unit)
        size += unit_size
    if batch:
        yield batch


Taken = tuple[SourceFile, bool] | str | Trouble | None


@dataclass(slots=True)
class _Read:
    """A stable file of a batch, read and hashed, before its bytes are stored."""

    index: int  # in the batch
    sha256: str
    data: bytes | None  # None: a big file, copied into the store from disk
    stable_at: float


def take(settings: Settings, path: str | Path, rel: str, cand: Candidate,
         owner: str) -> tuple[SourceFile, bool] | Trouble | None:
    """Read a stable file once, store its bytes, register it; None if it is not complete yet.

    Returns the ledger row and whether it is new (a new row still has to be enqueued), or the
    Trouble that kept it out of the ledger.
    """
    outcome = take_many(settings, [(path, rel, cand)], owner)[0]
    if outcome == "gone":
        raise FileNotFoundError(path)
    return outcome  # type: ignore[return-value]


def take_many(settings: Settings, batch: Sequence[tuple[str | Path, str, Candidate]],
              owner: str, kept: dict[str, store.Location] | None = None) -> list[Taken]:
    """Read each stable file once, store its bytes durably, then register them together.

    ``rel`` is the path relative to the inbox as the OS gives it (ledger.ledger_path makes it
    the ledger's). For each file: (row, is_new); None when it is not complete yet (changed while
    being read); "gone" when it vanished; a Trouble when it cannot be read (no permission, or
    locked by its writer on Windows) or its row alone fails to register. The raw files are
    stored as one durable batch, and the ledger rows commit in one transaction — after the
    bytes are safe. ``kept`` carries, from one attempt to the next, where the bytes of files
    not registered yet were stored, so a failed registration never stores them again.
    """
    outcomes: list[Taken] = [None] * len(batch)
    read: list[_Read] = []
    for i, (path, rel, cand) in enumerate(batch):
        if cand.size > settings.max_file_bytes:
            outcomes[i] = _register_oversized(settings, path, rel, cand), False
            continue
        streamed = cand.size > store.STREAM_BYTES
        try:
            if streamed:  # hashed now and copied into the store later, a chunk at a time
                sha, size = store.hash_file(path)
                data: bytes | None = None
            else:
                data = store.read_whole(path, cand.size)
                sha, size = store.sha256_of(data), len(data)
            st = os.stat(path)
        except FileNotFoundError:
            outcomes[i] = "gone"
            continue
        except PermissionError as exc:  # or still locked by its writer (Windows)
            outcomes[i] = Trouble("unreadable", exc.strerror or str(exc))
            continue
        if (st.st_size, st.st_mtime_ns) != (cand.size, cand.mtime_ns) or size != cand.size:
            cand.size = -1  # changed while being read: start the stability window again
            continue
        read.append(_Read(i, sha, data, time.time()))
    # Contents the ledger has already are duplicates: stored once, with their first copy.
    known = ledger.stored(settings.raw_dir, [one.sha256 for one in read])
    kept = {} if kept is None else kept
    places = {sha: place for sha, place in kept.items()
              if store.has(settings.raw_dir, sha, place.pack)}
    fresh = store.put_many(settings.raw_dir, [(one.sha256, one.data) for one in read
                                              if one.data is not None
                                              and one.sha256 not in known
                                              and one.sha256 not in places],
                           fsync=settings.fsync)
    for one in list(read):
        if one.data is None and one.sha256 not in known and one.sha256 not in places \
                and one.sha256 not in fresh:
            path, _, cand = batch[one.index]
            try:
                fresh[one.sha256] = store.put_file(settings.raw_dir, path, one.sha256, cand.size,
                                                   fsync=settings.fsync)
            except store.Changed:
                cand.size = -1  # written meanwhile: the stability window starts again
                read.remove(one)
            except FileNotFoundError:
                outcomes[one.index] = "gone"
                read.remove(one)
    kept.update(fresh)
    places.update(fresh)
    stored: list[tuple[int, ledger.Seen, bytes | None]] = []
    for one in read:
        _, rel, cand = batch[one.index]
        text, raw_path = ledger.ledger_path(rel)
        stored.append((one.index, ledger.Seen(
            path=text, size=cand.size, mtime_ns=cand.mtime_ns, sha256=one.sha256,
            detected_at=cand.detected_at, stable_at=one.stable_at, origin=settings.node,
            raw=places.get(one.sha256), path_bytes=raw_path), one.data))
    if settings.blobs_in_database:
        store_blobs([(seen.sha256, data) for _, seen, data in stored if data is not None])
        for i, seen, data in stored:
            if data is None:
                # The database copy (scale-out) is one value: a big file is read whole for
                # it, one at a time, not held with the rest of the batch.
                store_blobs([(seen.sha256, Path(batch[i][0]).read_bytes())])
    registered = _register(settings, [seen for _, seen, _ in stored], owner)
    for (i, seen, _), outcome in zip(stored, registered, strict=True):
        outcomes[i] = outcome
        if isinstance(outcome, Trouble):
            continue
        kept.pop(seen.sha256, None)
    if any(not isinstance(o, Trouble) and o is not None and o != "gone" and not o[1]
           for o in outcomes):
        try:  # those whose original is final; others wait for it (the disposal poll)
            dispose.dispose_copies(settings)
        except (OperationalError, InterfaceError, OSError) as exc:  # registered: the poll retries
            log.warning("duplicate copies not moved yet: %s", exc)
    return outcomes


def _register(settings: Settings, seen: list[ledger.Seen],
              owner: str) -> list[tuple[SourceFile, bool] | Trouble]:
    """Register a batch together; when that fails for something other than an outage, file by
    file, so one file's row that cannot be written keeps only that file out."""
    try:
        return list(ledger.register_many(seen, owner, settings.lease_seconds))
    except (OperationalError, InterfaceError):
        raise  # the database is busy or gone: the whole batch again later
    except Exception as exc:
        if len(seen) == 1:
            return [Trouble("unregistered", f"{type(exc).__name__}: {exc}")]
        log.warning("registering %d files together failed (%s: %s); registering them one by "
                    "one", len(seen), type(exc).__name__, exc)
    return [_register(settings, [one], owner)[0] for one in seen]


BLOB_STATEMENT_BYTES = 8 * 1024 * 1024  # raw bytes per INSERT: a batch of large traces is split


def store_blobs(blobs: list[tuple[str, bytes]]) -> None:
    """The raw bytes of a batch in the database, committed before the ledger rows that point
    at them.

    A consumer on another machine may take a row the moment it commits, so the bytes must
    already be there; a crash in between leaves blobs the next scan registers (idempotent by
    SHA-256). One transaction for the batch (one commit, so one flush of the server's log,
    rather than one per file), kept out of the registering transaction so the audit chain's
    lock is not held while megabytes travel to the server.
    """
    wanted = dict(blobs)
    have: set[str] = set()
    shas = list(wanted)
    for chunk in sql.chunks(shas):
        have.update(r[0] for r in sql.rows(f"SELECT sha256 FROM {sql.table(RawBlob)} WHERE "
                                           f"sha256 IN ({sql.marks(len(chunk))})", chunk))
    todo = [(sha, data) for sha, data in wanted.items() if sha not in have]
    if not todo:
        return
    with database.atomic():
        statement: list[tuple[str, bytes]] = []
        size = 0
        for sha, data in todo:
            if statement and (len(statement) == sql.CHUNK
                              or size + len(data) > BLOB_STATEMENT_BYTES):
                _insert_blobs(statement)
                statement, size = [], 0
            statement.append((sha, data))
            size += len(data)
        _insert_blobs(statement)


def _insert_blobs(rows: list[tuple[str, bytes]]) -> None:
    sql.execute(f"INSERT INTO {sql.table(RawBlob)} (sha256, data) VALUES "
                f"{', '.join(['(?, ?)'] * len(rows))} ON CONFLICT (sha256) DO NOTHING",
                [v for row in rows for v in row])


def _register_oversized(settings: Settings, path: str | Path, rel: str,
                        cand: Candidate) -> SourceFile:
    """Over the size limit: hashed in chunks, never loaded; rejected and quarantined."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    sha = digest.hexdigest()
    reason = (f"file is {cand.size / 1048576:.1f} MiB, over the {settings.max_file_mb:g}"
              " MiB limit (max_file_mb)")
    text, raw_path = ledger.ledger_path(rel)
    row = ledger.register_rejected(sha, text, raw_path, settings.node, cand.size,
                                   cand.mtime_ns, reason)
    dispose.dispose_row(settings, row)
    return row
