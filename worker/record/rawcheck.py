"""Re-hashing every stored raw content: the check behind ``audit verify --raw`` and the scrub.

The ledger promises each file's exact bytes are kept; this reads them all back, a chunk at a
time, and names every content that is missing or no longer matches its SHA-256 — in the raw
store (where the ledger says) and, scaled out, in the ``raw_blob`` rows. ``pace`` slows it
down for the background scrub so a lab PC never notices it, and holds it back while ingest
has a backlog.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from worker.record import sql, store
from worker.record.models import REJECTED, RawBlob, SourceFile
from worker.settings import Settings

_FILES_SQL = (f"SELECT id, sha256, path, state, raw_pack, raw_offset FROM {sql.table(SourceFile)}"
              " WHERE id > ? ORDER BY id LIMIT 500")
_BLOBS_SQL = f"SELECT sha256 FROM {sql.table(RawBlob)} WHERE sha256 > ? ORDER BY sha256 LIMIT 500"
_BLOB_SQL = f"SELECT data FROM {sql.table(RawBlob)} WHERE sha256 = ?"
_HAS_BLOB_SQL = f"SELECT 1 FROM {sql.table(RawBlob)} WHERE sha256 = ?"


@dataclass
class RawReport:
    checked: int = 0  # contents in the raw store
    blobs: int = 0  # raw_blob rows (scale-out)
    bytes: int = 0
    never_stored: int = 0  # rejected for their size before being stored: nothing to check
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class Pace:
    """Sleeps so that reading goes no faster than ``bytes_per_second``; given ``busy`` (is
    there other work to make way for?), also pauses while it answers yes.

    ``busy`` is asked at most every ASK_SECONDS (between two files, so it costs nothing per
    file), and the pauses of one Pace add up to at most ``max_pause`` seconds: after that it
    reads on at its rate whatever ``busy`` says, so a system that is never idle is still read
    through. Time paused is not reading time: the rate is not caught up on afterwards.
    """

    ASK_SECONDS = 1.0

    def __init__(self, bytes_per_second: float, stopped: Callable[[], bool] = lambda: False,
                 busy: Callable[[], bool] | None = None, max_pause: float = 0.0) -> None:
        self.rate, self.stopped = bytes_per_second, stopped
        self.busy, self.max_pause = busy, max_pause
        self.start, self.done = time.monotonic(), 0
        self.paused = 0.0  # seconds, in all
        self.pausing = False  # now, making way for ``busy``
        self._asked = -math.inf

    def __call__(self, size: int) -> bool:
        """Account for ``size`` bytes read; False when told to stop meanwhile."""
        self.done += size
        self._make_way()
        ahead = self.done / self.rate - (time.monotonic() - self.start)
        while ahead > 0 and not self.stopped():
            time.sleep(min(ahead, 0.5))
            ahead = self.done / self.rate - (time.monotonic() - self.start)
        return not self.stopped()

    def _make_way(self) -> None:
        if self.busy is None or self.paused >= self.max_pause:
            return
        began = time.monotonic()
        if began - self._asked < self.ASK_SECONDS:
            return
        self._asked = began
        if not self.busy():
            return
        self.pausing = True
        try:
            while not self.stopped():
                left = self.max_pause - self.paused - (time.monotonic() - began)
                if left <= 0:
                    break
                time.sleep(min(left, self.ASK_SECONDS))
                self._asked = time.monotonic()
                if not self.busy():
                    break
        finally:
            self.pausing = False
            pause = time.monotonic() - began
            self.paused += pause
            self.start += pause


def check_all(settings: Settings, pace: Callable[[int], bool] | None = None) -> RawReport:
    """Every ledger row's stored bytes, then every ``raw_blob`` row, re-hashed."""
    report = RawReport()
    if pace is not None and not pace(0):  # a pause due before the first read, too
        return report
    last = 0
    while rows := sql.rows(_FILES_SQL, (last,)):
        for file_id, sha, path, state, pack, offset in rows:
            last = file_id
            size = _check_file(settings, report, file_id, sha, path, state, pack, offset)
            if pace is not None and not pace(size):
                return report
    after = ""
    while shas := [r[0] for r in sql.rows(_BLOBS_SQL, (after,))]:
        for sha in shas:
            after = sha
            found = sql.rows(_BLOB_SQL, (sha,))
            data = bytes(found[0][0]) if found else b""
            report.blobs += 1
            report.bytes += len(data)
            if store.sha256_of(data) != sha:
                report.problems.append(f"raw_blob {sha[:12]}… (in the database) does not match "
                                       "its SHA-256")
            if pace is not None and not pace(len(data)):
                return report
    return report


def _check_file(settings: Settings, report: RawReport, file_id: int, sha: str, path: str,
                state: str, pack: str | None, offset: int | None) -> int:
    try:
        size = store.check(settings.raw_dir, sha, pack, offset)
    except FileNotFoundError:
        if pack is None and state == REJECTED:
            report.never_stored += 1
        elif not sql.rows(_HAS_BLOB_SQL, (sha,)):  # scaled out: checked with the blobs
            where = f"pack {pack}" if pack else str(store.path_for(settings.raw_dir, sha))
            report.problems.append(f"file {file_id} ({path}): its raw bytes are missing "
                                   f"({where} is gone)")
        return 0
    except store.StoreError as exc:
        report.problems.append(f"file {file_id} ({path}): {exc}"
                               + (f" (pack {pack})" if pack else ""))
        return 0
    report.checked += 1
    report.bytes += size
    return size
