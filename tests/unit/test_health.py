"""What /status and /readyz report, read from a real database: counts from the ledger, and each
readiness check naming what is wrong until it is fixed."""

from __future__ import annotations

import random
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from support.pipeline import Pipeline
from support.reports import random_peaks, report

from worker.consume.queue import open_queue
from worker.record import heartbeat
from worker.record.models import SourceFile, utcnow
from worker.runtime.health import Probe, checks, facts


@pytest.fixture
def mixed(pipeline: Pipeline) -> Pipeline:
    """One file ingested, one rejected (line 3 of its table), one still queued."""
    pipeline.run("Good_Report.csv", report(random_peaks(random.Random(1), 3)))
    pipeline.run("Bad_Report.csv", "\n".join(report(random_peaks(random.Random(2), 5))
                                              .split("\n")[:18]))
    pipeline.drop("Later_Report.csv", report(random_peaks(random.Random(3), 2)))
    pipeline.take("Later_Report.csv")
    return pipeline


def test_facts_count_the_ledger_and_name_recent_rejections(mixed: Pipeline) -> None:
    queue = open_queue(mixed.settings)
    queue.enqueue([1, 2])
    got = facts(Probe(mixed.settings, queue=queue))

    assert {k: v for k, v in got["files"].items() if v} == {"ingested": 1, "rejected": 1,
                                                            "queued": 1}
    assert got["backlog"] == 1 and got["queue_depth"] == 1
    assert got["last_ingest"] and got["oldest_backlog"]
    [rejection] = got["recent_rejections"]
    assert rejection["path"] == "Bad_Report.csv" and rejection["line"] is not None
    assert rejection["reason"] == SourceFile.get(SourceFile.name == "Bad_Report.csv").error


def test_every_check_passes_on_a_healthy_installation(mixed: Pipeline) -> None:
    probe = Probe(mixed.settings, queue=open_queue(mixed.settings),
                  observer_alive=lambda: True)
    found = checks(probe)
    assert {"database", "queue", "inbox", "observer", "disk", "backlog"} <= set(found)
    assert {k: v for k, v in found.items() if k != "loops"} == dict.fromkeys(found.keys()
                                                                           - {"loops"})


def test_an_old_backlog_fails_readiness_until_it_is_worked_off(tmp_path: Path) -> None:
    pipeline = Pipeline.open(tmp_path, backlog_max_minutes=5)
    try:
        pipeline.drop("Late_Report.csv", report(random_peaks(random.Random(4), 2)))
        [row] = pipeline.take("Late_Report.csv")
        probe = Probe(pipeline.settings)
        assert checks(probe)["backlog"] is None
        SourceFile.update(first_seen=utcnow() - timedelta(minutes=30)).execute()
        assert "backlog_max_minutes = 5" in str(checks(probe)["backlog"])
        pipeline.ingest([row])
        assert checks(probe)["backlog"] is None
    finally:
        pipeline.close()


def test_a_missing_inbox_or_a_dead_observer_is_named(pipeline: Pipeline) -> None:
    alive = [True]
    probe = Probe(pipeline.settings, observer_alive=lambda: alive[0])
    shutil.rmtree(pipeline.settings.inbox)
    alive[0] = False
    found = checks(probe)
    assert "missing or unreadable" in str(found["inbox"])
    assert found["observer"] == "file observer is not running"
    pipeline.settings.inbox.mkdir()
    alive[0] = True
    assert (checks(probe)["inbox"], checks(probe)["observer"]) == (None, None)


def test_too_little_free_disk_is_named_with_the_setting(tmp_path: Path) -> None:
    pipeline = Pipeline.open(tmp_path, min_free_mb=1e12)
    try:
        assert "min_free_mb" in str(checks(Probe(pipeline.settings))["disk"])
    finally:
        pipeline.close()


@pytest.fixture
def write_lock_held(pipeline: Pipeline) -> Iterator[None]:
    """Another process's transaction holding SQLite's write lock on the worker's database."""
    other = sqlite3.connect(pipeline.settings.database[len("sqlite:///"):], timeout=5)
    other.execute("BEGIN IMMEDIATE")
    yield
    other.rollback()
    other.close()


def test_a_database_that_answers_but_cannot_be_written_is_not_ready(
        pipeline: Pipeline, write_lock_held: None) -> None:
    problem = checks(Probe(pipeline.settings))["database"]
    assert problem is not None and problem.startswith("database is not writable")


def test_a_loop_that_cannot_make_progress_is_named_until_it_can(pipeline: Pipeline) -> None:
    beat = heartbeat.loop("test loop", stall_after=None)
    try:
        beat.failed("database is locked")
        assert "test loop: database is locked" in str(checks(Probe(pipeline.settings))["loops"])
        beat.ok()
        assert "test loop" not in str(checks(Probe(pipeline.settings))["loops"])
    finally:
        heartbeat.forget("test loop")
