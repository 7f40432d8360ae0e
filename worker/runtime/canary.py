"""The end-to-end canary: a tiny known report pushed through the real path at an interval.

A running process proves little by answering /livez; the canary proves the path works. Every
``canary_seconds`` a report with known peaks is written into ``inbox/_accu_canary/`` (written
under a hidden temporary name, then renamed, so the watcher sees it whole). From there it takes the
same road as any export: observer, stability gate, raw store, ledger, queue, parser, chemistry,
one transaction, disposal. The canary then reads the ledger and checks the purity computed for it.

Each canary has unique bytes (a timestamp and nonce in its sample name), so the SHA-256 ledger
never takes it for a duplicate. Its rows are ordinary rows in a Job of its own, recognised by the
reserved folder name; ``results``, ``export``, ``/status`` file counts and ``/metrics`` file
counts leave them out, and report the canary on its own.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from worker.record import store
from worker.record.canaries import CANARY_DIR
from worker.record.models import INGESTED, REJECTED, Injection, Result, SourceFile, database
from worker.results import kinds
from worker.settings import Settings

log = logging.getLogger(__name__)

EXPECTED_PURITY = 97.5


def report_bytes(nonce: str) -> bytes:
    """A minimal OpenLab report: two peaks, the main one at 97.5 Area%."""
    return (f"Sample Name:,canary-{nonce}\r\n"
            "Height,Area,Area%,Peak Begin Time,Peak End Time,RT [min]\r\n"
            "10.0,97.5,97.5,1.00,1.20,1.10\r\n"
            "0.3,2.5,2.5,2.00,2.20,2.10\r\n"
            "Sum,100.0,,,,\r\n").encode()


@dataclass
class Pending:
    sha256: str
    name: str
    dropped_at: float


class Canary:
    """Drops a canary every ``canary_seconds`` and checks the one in flight."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.folder = settings.inbox / CANARY_DIR
        self.pending: Pending | None = None
        self.last_dropped: float | None = None
        self.last_checked: float | None = None
        self.problem: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="canary", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        next_drop = time.monotonic()
        while not self._stop.is_set():
            try:
                if self.pending is not None:
                    self.check()
                elif time.monotonic() >= next_drop:
                    self.drop()
                    next_drop = time.monotonic() + self.settings.canary_seconds
            except Exception as exc:  # the canary reports problems; it never stops the worker
                log.exception("canary error")
                self.problem = f"canary error: {exc}"
            finally:
                if not database.is_closed():
                    database.close()
            self._stop.wait(0.5)

    def drop(self) -> None:
        """Write the next canary into the inbox, whole, under its final name."""
        nonce = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(4)
        data = report_bytes(nonce)
        if not self.settings.inbox.is_dir():  # never create the inbox: it may be a lost share
            self.problem = f"canary not dropped: inbox {self.settings.inbox} is missing"
            return
        self.folder.mkdir(exist_ok=True)
        name = f"canary-{nonce}.csv"
        tmp = self.folder / f".{name}.tmp"  # hidden: the watcher ignores it until the rename
        tmp.write_bytes(data)
        os.replace(tmp, self.folder / name)
        self.pending = Pending(store.sha256_of(data), name, time.time())
        self.last_dropped = self.pending.dropped_at
        log.debug("canary dropped: %s", name)

    def check(self) -> None:
        """Has the canary in flight come out of the pipeline with the right purity?"""
        assert self.pending is not None
        pending = self.pending
        row = SourceFile.get_or_none(SourceFile.sha256 == pending.sha256)
        waited = time.time() - pending.dropped_at
        if row is not None and row.state == REJECTED:
            self._finish(f"canary {pending.name} was rejected: {row.error}")
        elif row is not None and row.state == INGESTED:
            purity = (Result.select(Result.value)
                      .join(Injection, on=(Injection.sample == Result.sample))
                      .where(Injection.source_file == row.id, Result.kind == kinds.PURITY.name,
                             Result.superseded == False)  # noqa: E712
                      .scalar())
            if purity is None or abs(purity - EXPECTED_PURITY) > 1e-9:
                self._finish(f"canary {pending.name} was ingested with purity {purity}, "
                             f"expected {EXPECTED_PURITY}")
            else:
                self._finish(None)
        elif waited > self.settings.canary_timeout_seconds:
            where = "never registered" if row is None else f"still {row.state}"
            self._finish(f"canary {pending.name} dropped {waited:.0f}s ago is {where} "
                         f"(canary_timeout_seconds = {self.settings.canary_timeout_seconds:g})")

    def _finish(self, problem: str | None) -> None:
        self.pending = None
        self.last_checked = time.time()
        self.problem = problem
        if problem:
            log.error("%s", problem)
        else:
            log.debug("canary passed")
