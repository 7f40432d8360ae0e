"""The Huey queue, chosen by URL, and the one task on it: ingest a ledger row.

The queue is only a hint (invariant 2): a task carries nothing but the ledger id, and losing it
costs a delay until the reconciler enqueues the row again. A queue other machines can reach
(Redis, PostgreSQL) signs its payloads so nothing unsigned is ever unpickled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from huey import Huey, PostgresHuey, RedisHuey, SqliteHuey
from huey.api import TaskWrapper
from huey.serializer import Serializer, SignedSerializer

from worker.db import redact
from worker.settings import Settings, SettingsError

log = logging.getLogger(__name__)

QUEUE_NAME = "accu-ingest"


class QueueUnavailable(Exception):
    """The queue URL cannot be reached; the message names it without its password."""


@dataclass
class Queue:
    """The Huey instance for these settings and its ingest task."""

    huey: Huey
    url: str
    ingest: TaskWrapper

    def enqueue(self, file_ids: list[int]) -> None:
        """Put ingest tasks on the queue for these ledger rows."""
        for file_id in file_ids:
            self.ingest(file_id)

    def depth(self) -> int:
        return self.huey.pending_count()

    def check(self) -> None:
        """Raise QueueUnavailable unless the queue answers."""
        try:
            self.huey.pending_count()
        except Exception as exc:
            raise QueueUnavailable(f"queue {redact(self.url)} does not answer: {exc}") from exc


def open_queue(settings: Settings) -> Queue:
    """A Huey on the configured queue, with the ingest task registered for these settings."""
    url = settings.queue
    secret = settings.queue_secret.get_secret_value() if settings.queue_secret else None
    remote = not url.startswith("sqlite:")
    if remote and not secret:
        raise SettingsError(f"queue {redact(url)} is reachable by other machines: set "
                            "queue_secret (ACCU_INGEST_QUEUE_SECRET or --queue-secret) so "
                            "payloads are signed")
    serializer = SignedSerializer(secret=secret, salt=QUEUE_NAME) if secret else Serializer()
    common = {"name": QUEUE_NAME, "results": False, "utc": True, "serializer": serializer}
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        huey: Huey = SqliteHuey(filename=str(path), fsync=settings.fsync, timeout=30, **common)
    elif url.startswith(("redis://", "rediss://")):
        huey = RedisHuey(url=url, **common)
    else:
        huey = PostgresHuey(dsn=url.replace("postgres://", "postgresql://", 1), **common)

    from worker import ingest

    @huey.task(name="ingest")
    def ingest_task(file_id: int) -> None:
        ingest.process(settings, file_id)

    return Queue(huey=huey, url=url, ingest=ingest_task)
