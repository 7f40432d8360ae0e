"""The worker under test: ``python -m worker run`` with a TOML config, watched from outside.

Everything is read the way an operator could: the ledger through a read-only SQLite connection,
the peak memory of the worker's processes (``run`` and its consumer processes) from /proc. The
worker runs on embedded defaults (SQLite database and queue, fsync on); the config names only
its folders and port.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .workload import REPO


class WorkerFailed(RuntimeError):
    """The worker exited or stalled; the message ends with the tail of its log."""


@dataclass(frozen=True)
class Ledger:
    """One SourceFile row as the benchmark needs it."""

    path: str
    state: str
    finished: float | None  # epoch seconds (finished_at is stored as naive UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, **settings: Any) -> Path:
    lines = [f"{key} = {json.dumps(str(v) if isinstance(v, Path) else v)}"
             for key, v in settings.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def epoch(stamp: str | None) -> float | None:
    """Epoch seconds of a stored UTC time (naive ``finished_at`` or ISO audit ``at``)."""
    if stamp is None:
        return None
    at = datetime.fromisoformat(stamp)
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


class Worker:
    """One worker process on its own inbox and data folder under ``root``."""

    def __init__(self, root: Path, data_dir: Path | None = None,
                 overrides: dict[str, Any] | None = None) -> None:
        self.root = root
        self.inbox = root / "inbox"
        self.data = data_dir or root / "data"
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config = write_config(root / "accu-ingest.toml", inbox=self.inbox,
                                   data_dir=self.data, port=self.port, **(overrides or {}))
        self.log = root / "worker.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._db: sqlite3.Connection | None = None

    # --- process ---------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> float:
        """Start the worker; returns the epoch time just before it was launched."""
        started = time.time()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "worker", "run", "--config", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + timeout
        while not self._alive():
            if time.monotonic() > deadline:
                self.fail(f"no /livez within {timeout:.0f}s")
            time.sleep(0.05)
        return started

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until /readyz says 200: the database, queue and every consumer process are up."""
        deadline = time.monotonic() + timeout
        while not self._answers("/readyz"):
            if time.monotonic() > deadline:
                self.fail(f"not ready within {timeout:.0f}s")
            time.sleep(0.05)

    def _alive(self) -> bool:
        return self._answers("/livez")

    def _answers(self, path: str) -> bool:
        self.check_running()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status == 200
        except OSError:  # HTTPError (503) included
            return False

    def check_running(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self.fail(f"worker exited with {self.proc.returncode}")

    def fail(self, what: str) -> None:
        tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        raise WorkerFailed(f"{what} ({self.root}); worker log ends:\n{tail}")

    @property
    def database(self) -> Path:
        return self.data / "accu-ingest.db"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def peak_rss_mb(self) -> float | None:
        """The sum of the peak resident sets (VmHWM) of the worker and its consumer processes:
        an upper bound of their peak together, since each peaks at its own moment. None where
        /proc is not available."""
        known = [mb for mb in self.peak_rss_parts_mb() if mb is not None]
        return sum(known) if known else None

    def cpu_seconds(self) -> float | None:
        """CPU time (user + system) the worker and its consumer processes have used so far;
        None where /proc is not available."""
        known = [s for s in self.cpu_seconds_parts() if s is not None]
        return sum(known) if known else None

    def cpu_seconds_parts(self) -> list[float | None]:
        """Each process's CPU time so far: the worker's first, then its consumer processes'."""
        return [cpu_seconds(pid) for pid in [self.pid, *children(self.pid)]]

    def peak_rss_parts_mb(self) -> list[float | None]:
        """Each process's peak: the worker's first, then its consumer processes'."""
        return [peak_rss_mb(pid) for pid in [self.pid, *children(self.pid)]]

    def stop(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    # --- the ledger, read only -------------------------------------------------------------
    def _ledger(self) -> sqlite3.Connection:
        if self._db is None:
            uri = f"file:{self.database}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, timeout=30)
        return self._db

    def final_count(self) -> int:
        row = self._ledger().execute(
            "SELECT count(*) FROM source_file WHERE state IN ('ingested', 'rejected')").fetchone()
        return int(row[0])

    def wait_final(self, n: int, timeout: float, interval: float = 0.2) -> None:
        """Until ``n`` files are ingested or rejected (polled; exact times come from the rows)."""
        deadline = time.monotonic() + timeout
        while self.final_count() < n:
            self.check_running()
            if time.monotonic() > deadline:
                self.fail(f"{self.final_count()} of {n} files final after {timeout:.0f}s")
            time.sleep(interval)

    def rows(self) -> list[Ledger]:
        cur = self._ledger().execute("SELECT path, state, finished_at FROM source_file")
        return [Ledger(path, state, epoch(finished)) for path, state, finished in cur]

    def finished(self, path: str) -> Ledger | None:
        row = self._ledger().execute(
            "SELECT path, state, finished_at FROM source_file WHERE path = ? AND state IN "
            "('ingested', 'rejected')", (path,)).fetchone()
        return Ledger(row[0], row[1], epoch(row[2])) if row else None

    def stage_times(self, events: tuple[str, ...]) -> dict[str, dict[str, float]]:
        """Per file path, the time of the last audit event of each kind in ``events``."""
        marks = ",".join("?" * len(events))
        cur = self._ledger().execute(
            "SELECT s.path, a.event, a.at FROM audit_event a JOIN source_file s ON "
            f"s.id = a.source_file_id WHERE a.event IN ({marks}) ORDER BY a.seq", events)
        times: dict[str, dict[str, float]] = {}
        for path, event, at in cur:
            when = epoch(at)
            if when is not None:
                times.setdefault(path, {})[event] = when
        return times

    def table_counts(self) -> dict[str, int]:
        tables = ("job", "source_file", "sample", "injection", "peak", "result", "audit_event")
        return {t: int(self._ledger().execute(f"SELECT count(*) FROM {t}").fetchone()[0])
                for t in tables}


def peak_rss_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def cpu_seconds(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (none where /proc is not available)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = entry.read_text()
        except OSError:  # it ended meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.parent.name))
    return sorted(found)  # the same order on every call, so readings can be paired


def drop(folders: list[Path], inbox: Path) -> dict[str, float]:
    """Rename staged folders into the inbox; returns each folder's drop time (epoch)."""
    dropped: dict[str, float] = {}
    for folder in folders:
        os.rename(folder, inbox / folder.name)
        dropped[folder.name] = time.time()
    return dropped
