"""The reconciler: the ledger is the truth, so unfinished rows are enqueued again.

Huey drops a task when a worker takes it; a consumer killed mid-task loses it. Every
``reconcile_seconds`` the one process holding the scheduler lease re-enqueues each unfinished
row whose lease expired or whose holder died. Re-enqueueing is harmless: the lease makes the
ingest task run once in effect.
"""

from __future__ import annotations

import logging
import threading
import time

from peewee import IntegrityError, InterfaceError, OperationalError

from worker import ledger
from worker.models import Lease, database
from worker.queue import Queue
from worker.settings import Settings

log = logging.getLogger(__name__)

SCHEDULER = "scheduler"


def hold_lease(name: str, owner: str, seconds: float) -> bool:
    """Take or renew the named lease; True while this owner holds it."""
    now = time.time()
    with database.atomic():
        updated = (Lease.update(owner=owner, until=now + seconds)
                   .where(Lease.name == name,
                          (Lease.owner == owner) | (Lease.until < now))
                   .execute())
        if updated:
            return True
        if Lease.get_or_none(Lease.name == name) is not None:
            return False
    try:
        with database.atomic():
            Lease.create(name=name, owner=owner, until=now + seconds)
        return True
    except IntegrityError:
        return False


def reconcile(queue: Queue, owner: str, lease_seconds: float) -> int:
    """Enqueue every recoverable row once; returns how many."""
    with database.atomic():
        ids = ledger.requeue(ledger.recoverable(), owner, lease_seconds)
    if ids:
        log.info("reconciler re-enqueues %d file(s)", len(ids))
        queue.enqueue(ids)
    return len(ids)


class Reconciler:
    """Background thread; does work only while it holds the scheduler lease."""

    def __init__(self, settings: Settings, queue: Queue) -> None:
        self.settings = settings
        self.queue = queue
        self.owner = ledger.owner_id("reconciler")
        self.is_scheduler = False
        self.last_run: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reconciler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        interval = self.settings.reconcile_seconds
        while not self._stop.is_set():
            try:
                self.is_scheduler = hold_lease(SCHEDULER, self.owner, interval * 3)
                if self.is_scheduler:
                    reconcile(self.queue, self.owner, self.settings.lease_seconds)
                    self.last_run = time.time()
            except (OperationalError, InterfaceError) as exc:  # busy, disk full, unreachable
                log.warning("reconciler pass failed (%s); will try again", exc)
            except Exception:
                log.exception("reconciler pass failed; will try again")
            self._stop.wait(interval)
