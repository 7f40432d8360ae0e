"""The Huey queue, chosen by URL, and the one task on it: ingest a ledger row.

The queue is only a hint (invariant 2): a task carries nothing but ledger ids, and losing it
costs a delay until the reconciler enqueues the row again. Every queue signs its payloads, and
a payload whose signature does not check — forged, tampered or unsigned — is refused before
pickle ever sees it, recorded in the audit trail as ``payload_rejected``, and dropped; the
consumer goes on with the next one. A queue other machines can reach (Redis, PostgreSQL) needs
``queue_secret``, the same on every machine; the default SQLite queue, without one, is signed
with a key generated into the data folder (whoever can write queue.db could otherwise make the
worker unpickle anything).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huey import Huey
from huey.api import TaskWrapper
from huey.serializer import Serializer, SignedSerializer, constant_time_compare
from huey.storage import PostgresStorage, RedisStorage, SqliteStorage

from worker.record import heartbeat, keys
from worker.record.db import describe_error, redact
from worker.settings import Settings, SettingsError

log = logging.getLogger(__name__)

PG_QUEUE_SCHEMA_LOCK = 0x61637175  # "acqu"
# Ledger ids per ingest task: one watcher intake batch. Each task's files share their
# transactions and their samples' and jobs' result recomputes, so a larger batch is faster up
# to a point, and holds its files' models and rows in a consumer's memory at once. A burst
# still splits between consumers, one task per intake batch; large files are parsed a chunk at
# a time (ingest.CHUNK_BYTES).
BATCH = 256
_SIGNATURE = re.compile(rb"^[0-9a-f]{40}$")  # SignedSerializer: hex HMAC-SHA1 after the last ':'


class QueueUnavailable(Exception):
    """The queue URL cannot be reached; the message names it without its password."""


class PayloadRejected(Exception):
    """A queue payload failed the signature check; it was not unpickled."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CheckedSerializer(SignedSerializer):
    """Huey's signed serializer, telling an unsigned payload from a bad signature.

    The signature is checked on the raw bytes; only a payload signed with our secret reaches
    ``pickle.loads``.
    """

    def _deserialize(self, data: bytes) -> Any:
        msg, sep, sig = data.rpartition(self.separator)
        if not sep or not _SIGNATURE.match(sig):
            raise PayloadRejected("unsigned: no signature after the last ':'")
        if not constant_time_compare(sig, self._signature(msg)):
            raise PayloadRejected("bad signature: not signed with this queue's secret")
        return Serializer._deserialize(self, msg)


class LockedPostgresStorage(PostgresStorage):
    """Huey's PostgreSQL storage, creating its tables under an advisory lock: concurrent
    ``CREATE TABLE IF NOT EXISTS`` from processes starting at once fail on PostgreSQL."""

    def initialize_schema(self) -> None:
        with self.db(commit=True, close=True) as curs:
            curs.execute("SELECT pg_advisory_xact_lock(%s)", (PG_QUEUE_SCHEMA_LOCK,))
            for sql in self.ddl:
                curs.execute(sql)


class CheckedHuey(Huey):
    """A Huey whose dequeue drops (and audits) payloads that fail the signature check.

    Huey's consumer would log a refused payload as a queue read error and back off; here it is
    an audited security event and the next payload is read at once.
    """

    queue_url = ""

    def dequeue(self) -> Any:
        beat = heartbeat.loop("queue", stall_after=None)
        while True:
            try:
                data = self.storage.dequeue()
            except Exception as exc:  # Huey logs it, waits and asks again
                beat.failed(f"queue {redact(self.queue_url)}: {exc}")
                raise
            beat.ok()
            if data is None:
                return None
            try:
                return self.deserialize_task(data)
            except PayloadRejected as exc:
                _audit_rejected(data, exc.reason, self.name, self.queue_url)


def _audit_rejected(data: bytes, reason: str, name: str, url: str) -> None:
    from worker.record import audit
    from worker.record.models import database

    seen = {"reason": reason, "queue": name, "url": redact(url), "size": len(data),
            "payload_sha256": hashlib.sha256(data).hexdigest(), "head": data[:48].hex()}
    log.error("queue payload rejected (%s), %d bytes, sha256 %s", reason, len(data),
              seen["payload_sha256"][:12])
    try:
        with database.atomic():
            audit.record("payload_rejected", **seen)
    except Exception:  # the payload is dropped either way; the log line above remains
        log.exception("could not audit the rejected payload")


@dataclass
class Queue:
    """The Huey instance for these settings and its ingest task."""

    huey: Huey
    url: str
    ingest: TaskWrapper

    def enqueue(self, file_ids: list[int]) -> None:
        """Put ingest tasks on the queue for these ledger rows, BATCH ids to a task: a burst
        then costs one queue write and one transaction per batch instead of per file."""
        for start in range(0, len(file_ids), BATCH):
            self.ingest(file_ids[start:start + BATCH])

    def depth(self) -> int:
        return self.huey.pending_count()

    def life(self) -> str | None:
        """Which life of the queue server this is, where a restart can lose its tasks: Redis
        keeps them in memory (and at best in a snapshot some seconds old). None for queues
        kept in a database, whose tasks outlive a restart."""
        storage = self.huey.storage
        if isinstance(storage, RedisStorage):
            return str(storage.conn.info("server").get("run_id"))
        return None

    def check(self) -> None:
        """Raise QueueUnavailable unless the queue answers."""
        try:
            self.huey.pending_count()
        except Exception as exc:
            raise QueueUnavailable(f"queue {redact(self.url)} does not answer: "
                                   f"{describe_error(exc, self.url)}") from exc


def open_queue(settings: Settings, work: Callable[[list[int]], None] | None = None) -> Queue:
    """A Huey on the configured queue, with the ingest task registered: ``work`` is its body
    (consume/ingest.py, handed in by the process that consumes), None where a process only
    enqueues, so a watch-only instrument PC never loads the parsers."""
    url = settings.queue
    secret = settings.queue_secret.get_secret_value() if settings.queue_secret else None
    remote = not url.startswith("sqlite:")
    if remote and not secret:
        raise SettingsError(f"queue {redact(url)} is reachable by other machines: set "
                            "queue_secret (ACCU_INGEST_QUEUE_SECRET or --queue-secret) so "
                            "payloads are signed")
    if not secret:  # the SQLite queue on this machine: a per-installation key does
        try:
            secret = keys.load_or_create(settings.queue_key_path).decode()
        except (keys.KeyFileError, OSError) as exc:
            raise SettingsError(f"queue key: {exc}") from None
    name = settings.queue_name
    serializer = CheckedSerializer(secret=secret, salt=name)
    common: dict[str, Any] = {"name": name, "results": False, "utc": True,
                              "serializer": serializer}
    try:
        if url.startswith("sqlite:///"):
            path = Path(url[len("sqlite:///"):])
            path.parent.mkdir(parents=True, exist_ok=True)
            # Huey's page cache is 8 MB per connection; the queue holds ledger ids only, a
            # few pages however large the burst, so each thread's connection needs little.
            huey = CheckedHuey(storage_class=SqliteStorage, filename=str(path),
                               fsync=settings.fsync, timeout=30, cache_mb=1, **common)
        elif url.startswith(("redis://", "rediss://")):
            huey = CheckedHuey(storage_class=RedisStorage, url=url, **common)
        elif url.startswith(("postgresql://", "postgres://")):
            # Creates Huey's tables at once, so an unreachable server fails here.
            huey = CheckedHuey(storage_class=LockedPostgresStorage,
                               dsn=url.replace("postgres://", "postgresql://", 1), **common)
        else:
            raise SettingsError(f"queue {redact(url)}: expected sqlite:///…, redis://… or "
                                "postgresql://…")
    except SettingsError:
        raise
    except Exception as exc:
        raise QueueUnavailable(f"cannot open queue {redact(url)}: "
                               f"{describe_error(exc, url)}") from exc
    huey.queue_url = url

    @huey.task(name="ingest")
    def ingest_task(file_ids: list[int] | int) -> None:
        if work is None:
            raise RuntimeError("this process only enqueues: it has no ingest to run")
        work([file_ids] if isinstance(file_ids, int) else file_ids)

    return Queue(huey=huey, url=url, ingest=ingest_task)
