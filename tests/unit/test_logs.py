"""The JSON log says what became of each file, with its facts as fields a log search can select
on; an operator's action leaves a line beside the service's logs; the routine wait of a ``.D``
folder's file does not read like an error."""

from __future__ import annotations

import io
import json
import logging
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.pipeline import Pipeline
from support.reports import random_peaks, report

from worker.consume.queue import open_queue
from worker.consume.reconcile import reconcile
from worker.record import ledger
from worker.runtime import logs
from worker.settings import Settings


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """What the service's JSON log file gets, from every logger."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield out
    root.removeHandler(handler)
    root.setLevel(level)


def entries(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_each_file_outcome_is_one_line_with_its_facts_as_fields(
        pipeline: Pipeline, json_log: io.StringIO) -> None:
    data = report(random_peaks(random.Random(1), 2))
    good = pipeline.run("A/S-1_Report.csv", data)
    bad = pipeline.run("Cut_Report.csv", "\n".join(report(random_peaks(random.Random(9), 5))
                                                   .split("\n")[:18]))
    pipeline.drop("B/S-1_Report.csv", data)
    pipeline.take("B/S-1_Report.csv")

    by_outcome = {e["outcome"]: e for e in entries(json_log) if "outcome" in e}
    ingested = by_outcome["ingested"]
    assert ingested["file_id"] == good.id and ingested["path"] == "A/S-1_Report.csv"
    assert ingested["sha256"] == good.sha256 and ingested["format"] == good.format
    assert ingested["job"] == good.job_id and isinstance(ingested["duration_s"], float)
    rejected = by_outcome["rejected"]
    assert rejected["file_id"] == bad.id and rejected["sha256"] == bad.sha256
    assert rejected["reason"] == bad.error and rejected["level"] == "WARNING"
    duplicate = by_outcome["duplicate"]
    assert duplicate["path"] == "B/S-1_Report.csv" and duplicate["file_id"] == good.id
    assert duplicate["first_path"] == "A/S-1_Report.csv"


def test_a_file_due_again_after_a_wait_is_routine_not_news(
        pipeline: Pipeline, json_log: io.StringIO) -> None:
    pipeline.drop("S-1_Report.csv", report(random_peaks(random.Random(2), 2)))
    [row] = pipeline.take("S-1_Report.csv")
    [claimed] = ledger.claim_many([row.id], pipeline.owner, 20.0)
    ledger.release(claimed, pipeline.owner, 0.0)  # what a .D folder's file waiting does
    assert reconcile(open_queue(pipeline.settings), "scheduler", 20.0) == 1
    said = [e for e in entries(json_log) if str(e["msg"]).startswith("reconciler")]
    assert [e["level"] for e in said] == ["DEBUG"] and "routine" in str(said[0]["msg"])


def test_an_operator_action_is_a_json_line_beside_the_service_logs(tmp_path: Path) -> None:
    settings = Settings(inbox=tmp_path / "inbox", data_dir=tmp_path / "data")
    logs.action(settings, "backup", "backed up a to b", dest="b", bytes=10)
    [line] = (settings.logs_dir / "accu-ingest-operator.jsonl").read_text().splitlines()
    entry = json.loads(line)
    assert entry["action"] == "backup" and entry["dest"] == "b" and entry["bytes"] == 10
    assert entry["user"] and entry["msg"] == "backed up a to b"


def test_the_json_log_rotates_once_it_reaches_its_size(tmp_path: Path) -> None:
    path = tmp_path / "accu-ingest-run.jsonl"
    handler = logs.QuietRotatingFileHandler(path, maxBytes=2000, backupCount=3, delay=True)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("test.rotation")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for n in range(100):
            logger.warning("file %d rejected", n, extra={"file_id": n})
    finally:
        logger.removeHandler(handler)
        handler.close()
    kept = [path, *(path.with_name(f"{path.name}.{i}") for i in (1, 2, 3))]
    assert all(p.exists() for p in kept) and not path.with_name(f"{path.name}.4").exists()
    lines = [line for p in kept for line in p.read_text().splitlines()]
    longest = max(len(line) + 1 for line in lines)
    for p in kept[1:]:  # each rotated file reached the size, and passed it by one line at most
        assert 2000 <= p.stat().st_size < 2000 + longest
    numbers = sorted(json.loads(line)["file_id"] for line in lines)
    assert numbers == list(range(numbers[0], 100))  # the newest lines, none lost in between
