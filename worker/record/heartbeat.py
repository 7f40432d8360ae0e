"""Heartbeats: is each loop of this process making progress, and is each process alive?

Two kinds, for two questions:

- A ``Loop`` per long-running loop (watcher gate, reconciler, consumer threads, the queue, the
  process heartbeat itself), in memory: it says "ok" after each pass that did its work (or found
  none to do) and "failed" with the error when a pass could not. Readiness and the systemd
  watchdog read them, so a process whose loops cannot reach the database says so, where a fresh
  connection opened by the probe would not.
- A row per process in ``process_heartbeat``, renewed every HEARTBEAT_SECONDS by the database's
  clock: a lease whose holder's row is older than STALE_SECONDS belongs to a dead process, on
  whatever machine it ran (ledger.holder_is_dead), so its files are taken over in seconds rather
  than when the lease runs out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass

from worker.record.db import DB_ERRORS, database_now, unsynced
from worker.record.models import ProcessBeat

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 3.0
STALE_SECONDS = 15.0  # a process whose row is this old is dead (five beats missed)
FORGET_SECONDS = 86400.0  # rows of processes gone this long are deleted
STALL_SECONDS = 120.0  # a loop that has not come round for this long is stuck


@dataclass
class Loop:
    """One loop's last news: when it last got through, and its error while it cannot."""

    name: str
    stall_after: float | None = STALL_SECONDS
    last_ok: float = 0.0  # time.monotonic()
    error: str | None = None
    failing_since: float | None = None
    # A loop that waits for work (a consumer thread) cannot stall while idle, but one pass of it
    # can hang (a parser that never returns): busy longer than busy_limit is stuck.
    busy_since: float | None = None
    busy_limit: float | None = None

    def __post_init__(self) -> None:
        self.last_ok = time.monotonic()

    def busy(self, limit: float) -> None:
        """A pass starts that should end within ``limit`` seconds."""
        self.busy_since, self.busy_limit = time.monotonic(), limit

    def idle(self) -> None:
        self.busy_since = None

    def ok(self) -> None:
        self.busy_since = None
        if self.error is not None:
            log.info("%s: working again after %.0f s", self.name,
                     time.monotonic() - (self.failing_since or time.monotonic()))
        self.last_ok, self.error, self.failing_since = time.monotonic(), None, None

    def failed(self, exc: BaseException | str) -> None:
        text = exc if isinstance(exc, str) else \
            (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        self.error = text

    def problem(self, now: float) -> str | None:
        if self.error is not None:
            return f"{self.error} (failing for {now - (self.failing_since or now):.0f} s)"
        if self.stall_after is not None and now - self.last_ok > self.stall_after:
            return f"no pass completed for {now - self.last_ok:.0f} s"
        if self.busy_since is not None and self.busy_limit is not None \
                and now - self.busy_since > self.busy_limit:
            return f"one pass has run for {now - self.busy_since:.0f} s"
        return None


_loops: dict[str, Loop] = {}
_lock = threading.Lock()


def loop(name: str, stall_after: float | None = STALL_SECONDS) -> Loop:
    """The heartbeat of the named loop of this process (made on first use)."""
    with _lock:
        found = _loops.get(name)
        if found is None:
            found = _loops[name] = Loop(name, stall_after)
        return found


def forget(name: str) -> None:
    """A loop that stopped on purpose is no longer expected to beat."""
    with _lock:
        _loops.pop(name, None)


def problems() -> dict[str, str]:
    """Each loop of this process that cannot make progress, with why; empty when all can."""
    now = time.monotonic()
    with _lock:
        loops = list(_loops.values())
    found = {}
    for one in loops:
        problem = one.problem(now)
        if problem:
            found[one.name] = problem
    return found


# --- the process heartbeat row ----------------------------------------------------------------
def process_key(owner: str) -> str:
    """The process part ("host:pid") of a lease owner (ledger.owner_id: host:pid:thread)."""
    return ":".join(owner.split(":", 2)[:2])


def stale_processes() -> set[str]:
    """The processes ("host:pid") whose heartbeat stopped STALE_SECONDS ago or more."""
    cutoff = database_now() - STALE_SECONDS
    return {r.owner for r in ProcessBeat.select(ProcessBeat.owner)
            .where(ProcessBeat.beat_at < cutoff)}


def beat(owner: str, role: str, node: str) -> None:
    """Renew this process's row (made at its first beat).

    Its commit does not wait for the disk (``db.unsynced``): every process beats every few
    seconds, each a synced commit under the write lock otherwise. A power cut that takes back
    the last beat of a process on the machine takes the process too, and the older row only
    says it is dead, which it is; a process that survives (the database's server lost it)
    lost one beat, HEARTBEAT_SECONDS, far within STALE_SECONDS, and beats again. A first
    beat taken back leaves no row, which is how every process starts: its leases then wait
    to expire, as before it beat."""
    now = database_now()
    with unsynced():
        renewed = (ProcessBeat.update(beat_at=now, role=role, node=node)
                   .where(ProcessBeat.owner == owner).execute())
        if not renewed:
            (ProcessBeat.insert(owner=owner, role=role, node=node, beat_at=now, started_at=now)
             .on_conflict(conflict_target=[ProcessBeat.owner],
                          update={ProcessBeat.beat_at: now}).execute())


class Heartbeat:
    """The thread renewing this process's row; its own Loop says whether the database takes it."""

    def __init__(self, role: str, node: str) -> None:
        from worker.record.ledger import HOST
        self.owner = f"{HOST}:{os.getpid()}"
        self.role, self.node = role, node
        self.loop = loop("heartbeat", stall_after=None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """At a graceful stop the row is marked dead at once: nothing of ours is in flight."""
        self._stop.set()
        self._thread.join(timeout=10)
        with contextlib.suppress(*DB_ERRORS):  # else it goes stale by itself
            ProcessBeat.update(beat_at=0).where(ProcessBeat.owner == self.owner).execute()
        forget("heartbeat")

    def _run(self) -> None:
        next_cleanup = 0.0
        while not self._stop.is_set():
            try:
                beat(self.owner, self.role, self.node)
                if time.monotonic() >= next_cleanup:
                    ProcessBeat.delete().where(
                        ProcessBeat.beat_at < database_now() - FORGET_SECONDS).execute()
                    next_cleanup = time.monotonic() + 3600
                self.loop.ok()
            except DB_ERRORS as exc:
                self.loop.failed(f"database: {exc}")
                log.warning("heartbeat failed (%s); will try again", exc)
            except Exception as exc:
                self.loop.failed(exc)
                log.exception("heartbeat failed; will try again")
            self._stop.wait(HEARTBEAT_SECONDS)
