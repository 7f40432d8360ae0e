"""The ledger is the truth, the queue a hint: a row whose task was lost is enqueued again, once,
by the one process holding the scheduler lease."""

from __future__ import annotations

import random

from support.pipeline import Pipeline
from support.reports import random_peaks, report

from worker.consume.queue import Queue, open_queue
from worker.consume.reconcile import SCHEDULER, hold_lease, reconcile, release_lease
from worker.record import ledger
from worker.record.models import Lease, SourceFile


def dead_owner() -> str:
    """A lease owner on this host whose process does not run: Linux pids end at 2**22."""
    return f"{ledger.HOST}:{2**22 + 1}:gone"


def queued(pipeline: Pipeline, n: int) -> list[SourceFile]:
    """N registered files whose ingest tasks were lost (never enqueued here)."""
    names = [f"S-{i}_Inj_1_Report.csv" for i in range(n)]
    for i, name in enumerate(names):
        pipeline.drop(name, report(random_peaks(random.Random(i))))
    return pipeline.take(*names)


def drain(queue: Queue) -> list[list[int]]:
    tasks = []
    while (task := queue.huey.dequeue()) is not None:
        tasks.append(task.args[0])
    return tasks


def test_a_row_under_its_lease_is_left_to_its_task(pipeline: Pipeline) -> None:
    queue = open_queue(pipeline.settings)
    queued(pipeline, 2)
    assert reconcile(queue, "scheduler-a", 20.0) == 0
    assert drain(queue) == []


def test_rows_whose_lease_ran_out_are_enqueued_again_once(pipeline: Pipeline) -> None:
    queue = open_queue(pipeline.settings)
    rows = queued(pipeline, 3)
    ledger.expire([r.id for r in rows])  # as if their tasks were lost with the queue

    assert reconcile(queue, "scheduler-a", 20.0) == 3
    assert reconcile(queue, "scheduler-a", 20.0) == 0  # their new lease covers the new task
    assert drain(queue) == [[r.id for r in rows]]
    assert pipeline.ingest(rows) == {r.id: "ingested" for r in rows}
    ledger.expire([r.id for r in rows])
    assert reconcile(queue, "scheduler-a", 20.0) == 0  # final rows are never enqueued


def test_a_row_held_by_a_dead_process_is_enqueued_at_once(pipeline: Pipeline) -> None:
    queue = open_queue(pipeline.settings)
    [row] = queued(pipeline, 1)
    (SourceFile.update(state="processing", lease_owner=dead_owner())
     .where(SourceFile.id == row.id).execute())  # its lease has not run out

    assert reconcile(queue, "scheduler-a", 20.0) == 1
    assert SourceFile.get_by_id(row.id).state == "queued"
    assert drain(queue) == [[row.id]]


def test_the_scheduler_lease_has_one_holder_renewed_until_released(pipeline: Pipeline) -> None:
    assert hold_lease(SCHEDULER, "a", 30.0)
    first = Lease.get_by_id(SCHEDULER).until
    assert not hold_lease(SCHEDULER, "b", 30.0)
    assert hold_lease(SCHEDULER, "a", 60.0)  # renewed by its holder
    assert Lease.get_by_id(SCHEDULER).until > first
    release_lease(SCHEDULER, "b")  # not b's to release
    assert Lease.get_by_id(SCHEDULER).owner == "a"
    release_lease(SCHEDULER, "a")
    assert hold_lease(SCHEDULER, "b", 30.0)
    assert not hold_lease(SCHEDULER, "a", 30.0)


def test_an_expired_or_dead_holders_lease_is_taken_over(pipeline: Pipeline) -> None:
    assert hold_lease(SCHEDULER, "a", -1.0)  # a holder that stopped renewing
    assert hold_lease(SCHEDULER, "b", 30.0)
    Lease.update(owner=dead_owner()).execute()  # b died without releasing it
    assert hold_lease(SCHEDULER, "c", 30.0)
    assert Lease.get_by_id(SCHEDULER).owner == "c"
