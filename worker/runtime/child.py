"""One consumer process of ``run`` (``python -m worker.runtime.child``), started by children.py.

Its whole contract with the parent is its stdin pipe:

- the first line is the parent's effective settings as JSON (defaults, config file, environment
  and options already merged), secrets included, so they appear in no command line;
- a later ``stop`` line asks for a graceful stop: files in flight finish. It is a line and not
  a signal because Windows cannot send SIGTERM to another process;
- the child answers on its stdout with one ``ready`` line once its database and queue are open,
  so the parent's readiness does not claim consumers that are still starting, then with a
  ``health`` line every HEALTH_SECONDS: the loops of its own that cannot make progress, as JSON
  (heartbeat.problems), so the parent's readiness and watchdog follow its consumers too;
- end of file means the parent died (the kernel closes its end): the child exits at once
  rather than live on as an orphan. Its open transaction rolls back, and its leases are a
  dead holder's (ledger.holder_is_dead, by pid), so the next ``run`` takes its files again.

It consumes only: the watcher, reconciler, canary and status endpoint are the parent's (one
scheduler, invariant 8), so a child never binds the parent's port.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from pydantic import SecretStr

from worker.runtime import drivers, logs
from worker.settings import Settings, SettingsError

log = logging.getLogger("worker.runtime.child")  # not __main__, which it is under ``python -m``

COMMAND = [sys.executable, "-m", "worker.runtime.child"]
STOP = b"stop\n"
READY = b"ready\n"
HEALTH = b"health "
HEALTH_SECONDS = 1.0


def handover(settings: Settings, index: int, log_level: int) -> bytes:
    """The first line a child reads: everything it needs to run as its parent would."""
    values = settings.model_dump(mode="json")
    for name, value in settings:
        if isinstance(value, SecretStr):  # model_dump masks them as "**********"
            values[name] = value.get_secret_value()
    values["notify"] = []  # consumers never notify (deliver/ runs in the parent), nor load apprise
    return json.dumps({"settings": values, "index": index, "log_level": log_level}).encode() \
        + b"\n"


def received(line: bytes) -> tuple[Settings, int, int]:
    """The child's side of ``handover``: settings, its index and the parent's log level.

    Every field is given, so the child's own environment cannot override any of them.
    """
    given: dict[str, Any] = json.loads(line)
    return Settings(**given["settings"]), int(given["index"]), int(given["log_level"])


def lines(fd: int) -> Iterator[bytes]:
    """The pipe's lines, read unbuffered: a thread blocked in sys.stdin's buffered reader holds
    its lock, and the interpreter then aborts at exit trying to take it."""
    pending = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # a broken pipe, where the platform reports it so: the parent is gone
            return
        if not chunk:
            return
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            yield line + b"\n"


def watch_parent(pipe: Iterator[bytes], index: int) -> None:
    """Turn the parent's ``stop`` into our graceful stop, and its death into our exit."""
    for line in pipe:
        if line == STOP:
            log.info("consumer %d: stop asked; finishing the files in flight", index)
            signal.raise_signal(signal.SIGTERM)  # Huey's graceful stop, in the main thread
    log.error("consumer %d: the parent process is gone; exiting now", index)
    logging.shutdown()
    os._exit(1)


def report_health() -> None:
    """Tell the parent every HEALTH_SECONDS which of our loops cannot make progress."""
    from worker.record import heartbeat
    while True:
        line = HEALTH + json.dumps(heartbeat.problems()).encode() + b"\n"
        try:
            os.write(sys.stdout.fileno(), line)
        except OSError:  # the parent is gone; watch_parent ends us
            return
        time.sleep(HEALTH_SECONDS)


def main() -> int:
    pipe = lines(sys.stdin.fileno())
    first = next(pipe, None)
    if first is None:
        return 2  # the parent died before it handed the settings over
    settings, index, level = received(first)
    drivers.leave_out_unused(settings)
    # Imported only now: they import peewee and Huey, which import every database and queue
    # client library installed unless leave_out_unused has just kept the unused ones out.
    from worker.consume.queue import QueueUnavailable, open_queue
    from worker.record import audit, db, heartbeat
    from worker.runtime.consumer import consume, ingest_work

    logs.setup(level <= logging.DEBUG, settings, f"consumer-{index}")
    threading.Thread(target=watch_parent, args=(pipe, index),
                     name="parent-watch", daemon=True).start()
    try:
        db.open_database(settings, migrate=False)  # the parent brought the schema up to date
        audit.open_chain()  # the parent keyed the trail; this checks the key is the same
        queue = open_queue(settings, ingest_work(settings))
    except (SettingsError, db.DatabaseUnavailable, QueueUnavailable) as exc:
        print(f"accu-ingest consumer {index}: {exc}", file=sys.stderr)
        return 2
    log.info("consumer %d: pid %d, %d thread(s), parent %d", index, os.getpid(),
             settings.workers, os.getppid())
    os.write(sys.stdout.fileno(), READY)  # the parent's readiness waits for this line
    threading.Thread(target=report_health, name="health", daemon=True).start()
    beats = heartbeat.Heartbeat("run-consumer", settings.node)
    beats.start()
    try:
        consume(settings, queue, restart_on_hangup=False)
    finally:
        beats.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
