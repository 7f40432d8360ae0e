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

from worker.consume.queue import Queue
from worker.record import heartbeat, ledger
from worker.record.db import Backoff, database_now
from worker.record.models import Lease, database
from worker.settings import Settings

log = logging.getLogger(__name__)

SCHEDULER = "scheduler"


def hold_lease(name: str, owner: str, seconds: float) -> bool:
    """Take or renew the named lease; True while this owner holds it.

    The conditional UPDATE is the lock: of several processes racing for an expired lease, the
    row lock lets one update it and the others then see it held. A lease nobody renews expires
    after ``seconds``; one whose holder is known dead (ledger.holder_is_dead) is taken at once.
    """
    now = database_now()
    with database.atomic():
        updated = (Lease.update(owner=owner, until=now + seconds)
                   .where(Lease.name == name,
                          (Lease.owner == owner) | (Lease.until < now))
                   .execute())
        if updated:
            return True
        held = Lease.get_or_none(Lease.name == name)
        if held is not None:
            # A holder that died (its pid gone on this host, or its heartbeat stale) is
            # replaced now: restarts in a row each waited out the dead one's lease.
            return ledger.holder_is_dead(held.owner) and bool(
                Lease.update(owner=owner, until=now + seconds)
                .where(Lease.name == name, Lease.owner == held.owner,
                       Lease.until == held.until).execute())
    try:
        with database.atomic():
            Lease.create(name=name, owner=owner, until=now + seconds)
        return True
    except IntegrityError:
        return False


def release_lease(name: str, owner: str) -> None:
    """Give the lease up at a graceful stop, so another process takes over at its next pass."""
    Lease.delete().where(Lease.name == name, Lease.owner == owner).execute()


def reconcile(queue: Queue, owner: str, lease_seconds: float) -> int:
    """Enqueue every recoverable row once; returns how many."""
    with database.atomic():
        rows = ledger.recoverable()
        ids = ledger.requeue(rows, owner, lease_seconds)
    if ids:
        # A row handed back on purpose (no holder: a .D folder waiting for its sibling, a retry
        # after a backoff) coming due is routine; a lease that ran out on its holder is news.
        taken = set(ids)
        lost = sum(1 for r in rows if r.id in taken and r.lease_owner)
        if lost:
            log.info("reconciler recovers %d file(s) whose holder died or whose lease ran out",
                     lost)
        if len(ids) - lost:
            log.debug("reconciler enqueues %d file(s) due again after a wait (a .D folder's "
                      "sibling, a retry backoff): routine", len(ids) - lost)
        try:
            queue.enqueue(ids)
        except Exception:
            # Not enqueued (the queue is away): their new leases must not make them wait.
            ledger.expire(ids)
            raise
    return len(ids)


class Reconciler:
    """Background thread; does work only while it holds the scheduler lease."""

    def __init__(self, settings: Settings, queue: Queue) -> None:
        self.settings = settings
        self.queue = queue
        self.owner = ledger.owner_id("reconciler")
        self.is_scheduler = False
        self.last_run: float | None = None
        self.queue_life: str | None = None  # Queue.life() at the last pass
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reconciler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self.is_scheduler:
            try:
                release_lease(SCHEDULER, self.owner)
            except Exception:  # the lease then expires by itself
                log.warning("could not release the scheduler lease", exc_info=True)

    def _run(self) -> None:
        interval = self.settings.reconcile_seconds
        beat = heartbeat.loop("reconciler", stall_after=max(heartbeat.STALL_SECONDS,
                                                            interval * 10))
        backoff = Backoff(first=interval, most=max(interval, 10.0))
        while not self._stop.is_set():
            wait = interval
            try:
                self.is_scheduler = hold_lease(SCHEDULER, self.owner, interval * 3)
                life = self.queue.life()
                if self.is_scheduler and life != self.queue_life is not None:
                    log.warning("the queue server was restarted and may have lost its tasks; "
                                "re-enqueueing every queued file (%d)", ledger.expire_queued())
                self.queue_life = life
                if self.is_scheduler:
                    reconcile(self.queue, self.owner, self.settings.lease_seconds)
                    self.last_run = time.time()
                beat.ok()
                backoff.succeeded()
            except (OperationalError, InterfaceError) as exc:  # busy, disk full, unreachable
                # Its connection, if dead, is replaced at the next query (db.py).
                wait = backoff.failed()
                beat.failed(f"database: {exc}")
                log.warning("reconciler pass failed (%s); will try again in %.0f s", exc, wait)
            except Exception as exc:  # the queue unreachable, or a bug
                wait = backoff.failed()
                beat.failed(exc)
                log.exception("reconciler pass failed; will try again")
            self._stop.wait(wait)
        heartbeat.forget("reconciler")
