"""Wiring the parts into processes: ``run`` (all in one, the lab PC), ``watch`` and ``consume``.

The Huey consumer owns the main thread and its signal handling: SIGINT or SIGTERM stop the
worker gracefully — in-flight files finish (or, if cut short, are re-queued by their lease).
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass

from huey.consumer import Consumer

from worker import db, notify
from worker.canary import Canary
from worker.health import Probe
from worker.queue import Queue, open_queue
from worker.reconcile import Reconciler
from worker.settings import Settings
from worker.status import StatusServer
from worker.watcher import Watcher

log = logging.getLogger(__name__)


@dataclass
class Parts:
    settings: Settings
    queue: Queue
    watcher: Watcher | None = None
    reconciler: Reconciler | None = None
    server: StatusServer | None = None
    canary: Canary | None = None


def start(settings: Settings, role: str = "run") -> Parts:
    """Open the database and queue and start the background parts of this role."""
    db.open_database(settings)
    queue = open_queue(settings)
    queue.check()  # an unreachable queue stops start-up (exit 2), naming its URL
    parts = Parts(settings=settings, queue=queue)
    if role in ("run", "watch"):
        parts.watcher = Watcher(settings, queue)
        parts.watcher.start()
    parts.reconciler = Reconciler(settings, queue)
    parts.reconciler.start()
    if parts.watcher is not None and settings.canary_seconds > 0:
        parts.canary = Canary(settings)
        parts.canary.start()
    probe = Probe(settings=settings, queue=queue, role=role, canary=parts.canary,
                  observer_alive=parts.watcher.observer_alive if parts.watcher else None)
    parts.server = StatusServer(probe, settings.host, settings.port)
    parts.server.start()
    host, port = parts.server.address
    watching = f"inbox {settings.inbox}, " if parts.watcher is not None else ""
    log.info("accu-ingest %s: node %s, %sdata %s, database %s, queue %s, "
             "status http://%s:%d/status", role, settings.node, watching, settings.data_dir,
             db.redact(settings.database), db.redact(settings.queue), host, port)
    return parts


def stop(parts: Parts) -> None:
    for part in (parts.canary, parts.watcher, parts.reconciler, parts.server):
        if part is not None:
            part.stop()


def run(settings: Settings, role: str = "run") -> None:
    """Run until SIGINT/SIGTERM. ``watch`` has no consumer; ``consume`` has no watcher."""
    notify.notify(f"STATUS=starting {role}")
    parts = start(settings, role)
    watchdog = notify.Watchdog(lambda: status_line(parts, role))
    notify.notify(f"READY=1\nSTATUS={status_line(parts, role)}")
    watchdog.start()
    try:
        if role == "watch":
            _wait_for_signal()
        else:
            consumer = Consumer(parts.queue.huey, workers=settings.workers, worker_type="thread",
                                # An idle worker polls the queue every 0.1 s at most: a single
                                # drop must show up at once, and a poll is one indexed query.
                                periodic=False, initial_delay=0.05, max_delay=0.1,
                                backoff=1.5, graceful_signal="TERM", shutdown_timeout=60)
            # SIGINT (Ctrl-C) is as graceful as SIGTERM: in-flight files finish first.
            consumer._signal_actions[signal.SIGINT] = (False, True)
            consumer.run()
    finally:
        watchdog.stop()
        notify.notify("STOPPING=1\nSTATUS=stopping: finishing files in flight")
        stop(parts)
        log.info("accu-ingest stopped")


def status_line(parts: Parts, role: str) -> str:
    """One line for ``systemctl status``, from this process's memory (never waits on the DB)."""
    words = [f"{role}: inbox {parts.settings.inbox}"]
    if parts.watcher is not None:
        stats = parts.watcher.stats
        alive = "observer ok" if parts.watcher.observer_alive() else "OBSERVER DOWN"
        words.append(f"{alive}, {stats.registered} registered, {stats.pending} pending")
    if parts.canary is not None:
        words.append(f"canary problem: {parts.canary.problem}" if parts.canary.problem
                     else "canary ok")
    return "; ".join(words)


def _wait_for_signal() -> None:
    import threading
    stopped = threading.Event()

    def handle(signum: int, frame: object) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stopped.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    while not stopped.wait(1.0):
        pass
