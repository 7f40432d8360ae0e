"""Wiring the parts into processes: ``run`` (the lab PC), ``watch`` and ``consume``.

``run`` is the watcher, reconciler and status endpoint, with its consumers either in child
processes (``consumer_processes`` > 0, see children.py) or as threads of its own. SIGINT or
SIGTERM stop the worker gracefully — in-flight files finish (or, if cut short, are re-queued by
their lease); the Huey consumer, where it runs in this process, owns the main thread and those
signals.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass

from worker.consume.queue import Queue, open_queue
from worker.consume.reconcile import Reconciler
from worker.deliver.runner import Deliver
from worker.intake.watcher import Watcher
from worker.record import audit, corrections, db, heartbeat
from worker.runtime import health, memory, sdnotify
from worker.runtime.canary import Canary
from worker.runtime.children import Children
from worker.runtime.consumer import consume, ingest_work
from worker.runtime.health import Probe
from worker.runtime.http import StatusServer
from worker.runtime.scrub import Scrub
from worker.settings import Settings, SettingsError

log = logging.getLogger(__name__)

RELEASE_SECONDS = 0.5  # how often a process without consumer threads gives freed memory back


@dataclass
class Parts:
    settings: Settings
    queue: Queue
    watcher: Watcher | None = None
    reconciler: Reconciler | None = None
    server: StatusServer | None = None
    canary: Canary | None = None
    children: Children | None = None
    anchor: audit.Anchorer | None = None
    scrub: Scrub | None = None
    beats: heartbeat.Heartbeat | None = None
    deliver: Deliver | None = None


def start(settings: Settings, role: str = "run") -> Parts:
    """Open the database and queue and start the background parts of this role."""
    db.open_database(settings)
    audit.open_chain()  # a key the trail is not keyed with stops start-up here (exit 2)
    corrections.record(settings)  # the configuration's corrections, as they take effect
    # Only a process that consumes loads the pipeline (parsers, chemistry): not a watch-only
    # instrument PC, nor run's parent when its consumers are child processes.
    consumes = role == "consume" or (role == "run" and settings.consumer_processes == 0)
    queue = open_queue(settings, ingest_work(settings) if consumes else None)
    queue.check()  # an unreachable queue stops start-up (exit 2), naming its URL
    parts = Parts(settings=settings, queue=queue)
    # The port is bound before anything starts: one taken since `doctor`'s check before start-up
    # still ends in a sentence (exit 2), not a traceback with the watcher already running.
    probe = Probe(settings=settings, queue=queue, role=role)
    try:
        parts.server = StatusServer(probe, settings.host, settings.port)
    except OSError as exc:
        raise SettingsError(f"status port {settings.host}:{settings.port} is not free "
                            f"({exc.strerror}; another accu-ingest?): stop what uses it, or "
                            "pass --port with a free port (0 = any)") from None
    parts.beats = heartbeat.Heartbeat(role, settings.node)
    parts.beats.start()
    if role in ("run", "watch"):
        parts.watcher = Watcher(settings, queue)
        parts.watcher.start()
    parts.reconciler = Reconciler(settings, queue)
    parts.reconciler.start()
    if parts.watcher is not None and settings.canary_seconds > 0:
        parts.canary = Canary(settings)
        parts.canary.start()
    if role == "run" and settings.consumer_processes > 0:
        parts.children = Children(settings, settings.consumer_processes)
    probe.canary = parts.canary
    probe.observer_alive = parts.watcher.observer_alive if parts.watcher else None
    probe.intake = parts.watcher.intake if parts.watcher else None
    probe.consumers = parts.children.describe if parts.children else None
    parts.server.start()
    if parts.children is not None:  # after the port is ours: a start that fails leaves none
        parts.children.start()
    host, port = parts.server.address
    watching = f"inbox {settings.inbox}, " if parts.watcher is not None else ""
    log.info("accu-ingest %s: node %s, %sdata %s, database %s, queue %s, %s, "
             "status http://%s:%d/status", role, settings.node, watching, settings.data_dir,
             db.redact(settings.database), db.redact(settings.queue), _consumers(parts, role),
             host, port)
    reconciler = parts.reconciler
    parts.anchor = audit.Anchorer(settings, lambda: reconciler.is_scheduler)
    parts.anchor.start()
    if parts.watcher is not None and settings.scrub_seconds > 0:  # where the raw store is
        parts.scrub = Scrub(settings, lambda: reconciler.is_scheduler)
        probe.scrub = parts.scrub
        parts.scrub.start()
    parts.deliver = Deliver(probe, lambda: reconciler.is_scheduler)
    parts.deliver.start()
    probe.deliver = parts.deliver.counts
    return parts


def _consumers(parts: Parts, role: str) -> str:
    threads = parts.settings.workers
    if role == "watch":
        return "no consumer"
    if parts.children is not None:
        return f"{len(parts.children.slots)} consumer process(es) × {threads} thread(s)"
    return f"{threads} consumer thread(s)"


def stop(parts: Parts) -> None:
    """Intake first, then the consumers (their files in flight finish), then the last
    checkpoint of the audit trail (while the scheduler lease is still held), then the rest."""
    for part in (parts.scrub, parts.canary, parts.watcher, parts.children, parts.deliver,
                 parts.anchor, parts.reconciler, parts.server, parts.beats):
        if part is not None:
            part.stop()


def run(settings: Settings, role: str = "run") -> None:
    """Run until SIGINT/SIGTERM. ``watch`` has no consumer; ``consume`` has no watcher; ``run``
    with consumer processes waits here while they consume.

    systemd hears READY=1 once the consumers run (the consumer threads started, or every
    consumer process said it is ready), the watchdog only while no loop is stuck, and, during
    the graceful stop, requests for more time while files in flight finish.
    """
    sdnotify.notify(f"STATUS=starting {role}")
    parts = start(settings, role)
    watchdog = sdnotify.Watchdog(lambda: status_line(parts, role), lambda: stuck(parts))

    def ready() -> None:
        sdnotify.notify(f"READY=1\nSTATUS={status_line(parts, role)}")
        watchdog.start()

    try:
        if role == "watch" or parts.children is not None:
            stopped = _on_signal()
            if parts.children is None or _children_ready(parts.children, stopped):
                ready()
            while not stopped.wait(RELEASE_SECONDS):
                memory.release()  # what the watcher's intake batches freed since
        else:
            consume(settings, parts.queue, started=ready)
    finally:
        watchdog.stop()
        sdnotify.notify("STOPPING=1\nSTATUS=stopping: finishing files in flight")
        with sdnotify.extending("finishing files in flight"):
            stop(parts)
        log.info("accu-ingest stopped")


def _children_ready(children: Children, stopped: threading.Event) -> bool:
    """Wait until every consumer process says it is ready; False if told to stop first. One
    that cannot start keeps the service from being ready: systemd's start timeout says so."""
    said = -1
    while not stopped.wait(0.1):
        state = children.describe()
        if state["ready"] == state["processes"]:
            return True
        if state["ready"] != said:
            said = state["ready"]
            sdnotify.notify(f"STATUS=starting: {said} of {state['processes']} consumer "
                            "processes ready")
    return False


def stuck(parts: Parts) -> str | None:
    """Which loops of this process, or of its consumer processes, cannot make progress: what
    /readyz reports under ``loops`` and ``consumers``, from memory. A consumer process still
    starting, or started again by the supervisor, is not stuck."""
    words = [health.loops_problem()]
    if parts.children is not None:
        problems = parts.children.describe()["problems"]
        words += [f"{name}: {why}" for name, why in sorted(problems.items())]
    return "; ".join(w for w in words if w) or None


def status_line(parts: Parts, role: str) -> str:
    """One line for ``systemctl status``, from this process's memory (never waits on the DB)."""
    words = [f"{role}: inbox {parts.settings.inbox}"]
    if parts.watcher is not None:
        stats = parts.watcher.stats
        alive = "observer ok" if parts.watcher.observer_alive() else "OBSERVER DOWN"
        words.append(f"{alive}, {stats.registered} registered, {stats.pending} pending")
    if parts.children is not None:
        consumers = parts.children.describe()
        words.append(f"consumer processes {consumers['ready']}/{consumers['processes']} ready")
    if parts.canary is not None:
        words.append(f"canary problem: {parts.canary.problem}" if parts.canary.problem
                     else "canary ok")
    return "; ".join(words)


def _on_signal() -> threading.Event:
    """An event set by SIGINT or SIGTERM."""
    stopped = threading.Event()

    def handle(signum: int, frame: object) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stopped.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    return stopped
