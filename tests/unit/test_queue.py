"""The queue carries only ledger ids, in batches, signed: a payload this installation did not
sign is refused before pickle sees it, audited, and the consumer reads on."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
from support.pipeline import Pipeline

from worker.consume.queue import BATCH, CheckedSerializer, PayloadRejected, open_queue
from worker.record.models import AuditEvent
from worker.settings import Settings, SettingsError


class Trap:
    """Unpickling this creates ``path``: proof that pickle ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def test_a_signed_payload_round_trips() -> None:
    serializer = CheckedSerializer(secret="s3cret", salt="accu-ingest")
    payload = {"ids": [1, 2, 3]}
    assert serializer.deserialize(serializer.serialize(payload)) == payload


def test_an_unsigned_or_forged_payload_is_refused_before_pickle(tmp_path: Path) -> None:
    ours = CheckedSerializer(secret="s3cret", salt="accu-ingest")
    theirs = CheckedSerializer(secret="guessed", salt="accu-ingest")
    trap = tmp_path / "unpickled"

    with pytest.raises(PayloadRejected, match="unsigned"):
        ours.deserialize(pickle.dumps(Trap(trap)))
    with pytest.raises(PayloadRejected, match="bad signature"):
        ours.deserialize(theirs.serialize(Trap(trap)))
    forged = bytearray(ours.serialize([1]))
    forged[-45] ^= 1  # a byte of the pickle; the signature stays the original's
    with pytest.raises(PayloadRejected, match="bad signature"):
        ours.deserialize(bytes(forged))
    assert not trap.exists()


def test_enqueue_puts_batch_ids_to_a_task_and_the_task_runs_them(pipeline: Pipeline) -> None:
    done: list[list[int]] = []
    queue = open_queue(pipeline.settings, done.append)
    assert queue.url.startswith("sqlite:///")

    ids = list(range(1, 2 * BATCH + 11))
    queue.enqueue(ids)
    assert queue.depth() == 3
    while (task := queue.huey.dequeue()) is not None:
        queue.huey.execute(task)
    assert done == [ids[:BATCH], ids[BATCH:2 * BATCH], ids[2 * BATCH:]]
    assert queue.depth() == 0


def test_a_process_that_only_enqueues_cannot_run_the_task(pipeline: Pipeline) -> None:
    queue = open_queue(pipeline.settings)
    queue.enqueue([1])
    task = queue.huey.dequeue()
    with pytest.raises(RuntimeError, match="only enqueues"):
        task.execute()  # the task body itself (Huey's consumer would log and drop this)


def test_the_sqlite_queue_key_is_kept_so_a_restart_reads_what_was_enqueued(
        pipeline: Pipeline) -> None:
    open_queue(pipeline.settings).enqueue([5, 6])
    done: list[list[int]] = []
    again = open_queue(pipeline.settings, done.append)  # a new process: the key from disk
    again.huey.execute(again.huey.dequeue())
    assert done == [[5, 6]]


def test_a_payload_written_into_queue_db_is_dropped_and_audited(
        pipeline: Pipeline, tmp_path: Path) -> None:
    trap = tmp_path / "unpickled"
    done: list[list[int]] = []
    queue = open_queue(pipeline.settings, done.append)
    queue.huey.storage.enqueue(pickle.dumps(Trap(trap)))  # a local account writing queue.db
    queue.enqueue([7])

    task = queue.huey.dequeue()  # the forged payload is skipped, the next one read
    queue.huey.execute(task)
    assert done == [[7]] and not trap.exists()
    [event] = AuditEvent.select().where(AuditEvent.event == "payload_rejected")
    assert "unsigned" in event.details


def test_a_queue_other_machines_reach_needs_a_secret(tmp_path: Path) -> None:
    settings = Settings(inbox=tmp_path / "inbox", data_dir=tmp_path / "data",
                        queue_url="redis://127.0.0.1:1/0")
    with pytest.raises(SettingsError, match="queue_secret"):
        open_queue(settings)
