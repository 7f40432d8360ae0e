"""Supervising the consumer processes of ``run`` (``consumer_processes`` > 0).

One Python process is bound to one core by the GIL; with the consumers in child processes, intake
(the parent's watcher: read, hash, store, register) and parse-and-write run on different cores.
The parent keeps the watcher, reconciler, canary and status endpoint (one scheduler, invariant
8); each child only consumes (child.py). A child that exits is started again after a backoff,
and ``stop`` asks each child for a graceful stop, waits (bounded), then kills what is left:
durability comes from the ledger's leases, so a killed child only delays its files.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from worker.runtime import child
from worker.runtime.consumer import SHUTDOWN_TIMEOUT
from worker.settings import Settings

log = logging.getLogger(__name__)

FIRST_BACKOFF = 1.0  # seconds before a dead child is started again; doubles while it keeps dying
MAX_BACKOFF = 30.0
STEADY_SECONDS = 60.0  # a child that ran this long before it died starts at FIRST_BACKOFF again
STOP_TIMEOUT = SHUTDOWN_TIMEOUT + 10.0  # Huey's shutdown timeout, plus the child's exit
POLL = 0.2
HEALTH_STALE = 15.0  # a ready child silent this long (child.HEALTH_SECONDS apart) is stuck


@dataclass
class Slot:
    """One consumer process and its restart bookkeeping."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restart_at: float | None = None
    backoff: float = FIRST_BACKOFF  # the wait after its next quick death
    restarts: int = 0
    ready: bool = False  # said so on its stdout (child.READY) since it was last started
    problems: dict[str, str] = field(default_factory=dict)  # its last child.HEALTH line
    health_at: float = 0.0  # time.monotonic() of that line

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _own_group() -> dict[str, Any]:
    """Popen options putting a child in a process group of its own: a Ctrl-C at the terminal
    then reaches only the parent, which forwards one graceful stop. A second stop signal
    would make Huey interrupt the files in flight."""
    if os.name == "nt":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}  # type: ignore[attr-defined]
    return {"process_group": 0}


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _tell(proc: subprocess.Popen[bytes], line: bytes) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(line)
        proc.stdin.flush()
    except OSError:  # it died or is exiting: the supervisor sees the exit
        pass


def _listen(slot: Slot, proc: subprocess.Popen[bytes]) -> None:
    """Read the child's stdout until it exits: its one ``ready`` line marks the slot ready."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if slot.proc is not proc:
            continue
        if line == child.READY:
            slot.ready, slot.health_at = True, time.monotonic()
        elif line.startswith(child.HEALTH):
            try:
                slot.problems = {str(k): str(v) for k, v in
                                 json.loads(line[len(child.HEALTH):]).items()}
            except ValueError:
                slot.problems = {"health": f"unreadable report {line[:80]!r}"}
            slot.health_at = time.monotonic()


def _hang_up(proc: subprocess.Popen[bytes]) -> None:
    if proc.stdin is not None:
        with contextlib.suppress(OSError):  # a line it never read: the pipe is broken
            proc.stdin.close()


class Children:
    """``count`` consumer processes, each running ``settings.workers`` threads."""

    def __init__(self, settings: Settings, count: int) -> None:
        self.settings = settings
        self.slots = [Slot(i + 1) for i in range(count)]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="children", daemon=True)

    def start(self) -> None:
        with self._lock:
            for slot in self.slots:
                self._spawn(slot)
        self._thread.start()

    def _spawn(self, slot: Slot) -> None:
        proc = subprocess.Popen(child.COMMAND, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                **_own_group())
        _tell(proc, child.handover(self.settings, slot.index,
                                   logging.getLogger().getEffectiveLevel()))
        slot.proc, slot.started, slot.restart_at, slot.ready = proc, time.monotonic(), None, False
        slot.problems = {}
        threading.Thread(target=_listen, args=(slot, proc), name=f"consumer-{slot.index}-out",
                         daemon=True).start()

    def _supervise(self) -> None:
        while not self._stop.wait(POLL):
            with self._lock:
                if self._stop.is_set():
                    return
                for slot in self.slots:
                    try:
                        self._check(slot)
                    except Exception:  # e.g. no memory to start a process: try again later
                        log.exception("supervising consumer process %d failed", slot.index)
                        slot.restart_at = time.monotonic() + MAX_BACKOFF

    def _check(self, slot: Slot) -> None:
        now = time.monotonic()
        if slot.restart_at is not None:
            if now >= slot.restart_at:
                slot.restarts += 1
                self._spawn(slot)
            return
        if slot.proc is None or slot.alive():
            return
        code = slot.proc.returncode
        _hang_up(slot.proc)
        wait = FIRST_BACKOFF if now - slot.started >= STEADY_SECONDS else slot.backoff
        slot.backoff = min(wait * 2, MAX_BACKOFF)
        slot.restart_at = now + wait
        log.error("consumer process %d (pid %d) ended: %s; starting it again in %.0f s",
                  slot.index, slot.proc.pid, describe_exit(code), wait)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Ask every child to finish its files in flight; kill those still running after
        ``timeout`` seconds."""
        with self._lock:
            self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        running = [s for s in self.slots if s.alive()]
        for slot in running:
            assert slot.proc is not None
            _tell(slot.proc, child.STOP)
        deadline = time.monotonic() + timeout
        for slot in running:
            assert slot.proc is not None
            try:
                slot.proc.wait(max(deadline - time.monotonic(), 0))
            except subprocess.TimeoutExpired:
                log.warning("consumer process %d (pid %d) did not stop within %.0f s; killing "
                            "it (its files are taken again by their lease)", slot.index,
                            slot.proc.pid, timeout)
                slot.proc.kill()
                slot.proc.wait()
        for slot in self.slots:
            if slot.proc is not None:
                _hang_up(slot.proc)

    def describe(self) -> dict[str, Any]:
        """For /status, /readyz and the systemd status line; from memory, never waits."""
        alive = [s for s in self.slots if s.alive()]
        now = time.monotonic()
        problems = {}
        for s in alive:
            if not s.ready:
                continue
            words = [f"{name}: {why}" for name, why in sorted(s.problems.items())]
            if now - s.health_at > HEALTH_STALE:
                words.append(f"no health report for {now - s.health_at:.0f} s")
            if words:
                problems[f"consumer process {s.index}"] = "; ".join(words)
        return {"processes": len(self.slots), "alive": len(alive),
                "ready": sum(1 for s in alive if s.ready), "problems": problems,
                "pids": [s.proc.pid for s in alive if s.proc is not None],
                "restarts": sum(s.restarts for s in self.slots)}
