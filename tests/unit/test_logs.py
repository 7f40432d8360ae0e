"""The JSON log says what became of each file, with its facts as fields a log search can select
on; an operator's action leaves a line beside the service's logs; the routine wait of a ``.D``
folder's file does not read like an error."""

from __future__ import annotations

import io
import json
import logging
import random
import time
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
    _rotated_at_2000_bytes(path)


@pytest.fixture
def batched(tmp_path: Path) -> Iterator[tuple[logging.Logger, logs.BatchedFile, Path]]:
    """A logger writing only to the service's JSON log file, rotated at 2,000 bytes."""
    path = tmp_path / "accu-ingest-run.jsonl"
    handler = logs.BatchedFile(path, maxBytes=2000, backupCount=3, encoding="utf-8", delay=True)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger(f"test.batched.{tmp_path.name}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield logger, handler, path
    logger.removeHandler(handler)
    handler.close()


def messages(path: Path) -> list[str]:
    return [json.loads(line)["msg"] for line in path.read_text().splitlines()] \
        if path.exists() else []


def test_a_warning_is_in_the_log_file_at_once_with_the_lines_before_it(
        batched: tuple[logging.Logger, logs.BatchedFile, Path]) -> None:
    logger, _, path = batched
    logger.info("file 1 ingested")
    logger.warning("file 2 rejected")
    assert messages(path) == ["file 1 ingested", "file 2 rejected"]


def test_an_info_line_reaches_the_log_file_without_another_line_after_it(
        batched: tuple[logging.Logger, logs.BatchedFile, Path]) -> None:
    logger, _, path = batched
    logger.info("file 1 ingested")
    deadline = time.monotonic() + 30
    while messages(path) != ["file 1 ingested"]:
        assert time.monotonic() < deadline, "the line never reached the file"
        time.sleep(0.05)


def test_closing_the_log_writes_every_line(tmp_path: Path) -> None:
    path = tmp_path / "accu-ingest-run.jsonl"
    handler = logs.BatchedFile(path, maxBytes=logs.MAX_BYTES, backupCount=1, delay=True)
    handler.setFormatter(logs.JsonFormatter())
    for n in range(50):
        handler.handle(logging.makeLogRecord({"msg": f"line {n}", "levelno": logging.INFO,
                                              "levelname": "INFO"}))
    handler.close()
    assert messages(path) == [f"line {n}" for n in range(50)]


def test_the_batched_log_rotates_once_it_reaches_its_size(
        batched: tuple[logging.Logger, logs.BatchedFile, Path]) -> None:
    logger, handler, path = batched
    for n in range(100):
        logger.info("file %d ingested ✓", n, extra={"file_id": n})  # not ASCII: counted as bytes
    handler.close()
    _rotated_at_2000_bytes(path)


def test_another_process_s_lines_count_toward_the_size_by_the_next_flush(
        batched: tuple[logging.Logger, logs.BatchedFile, Path]) -> None:
    logger, _, path = batched
    logger.warning("first")
    with path.open("a") as other:
        other.write("x" * 2500 + "\n")
    logger.warning("second")  # its flush reads the size the other writer made
    logger.warning("third")
    assert messages(path) == ["third"]
    assert path.with_name(f"{path.name}.1").read_text().count("\n") == 3


def test_the_json_line_is_the_standard_encoder_s_text() -> None:
    record = logging.makeLogRecord({
        "msg": "ingested %s", "args": ("Ä/ß.csv",), "levelno": logging.INFO,
        "levelname": "INFO", "name": "worker.consume.ingest", "path": "Ä/ß.csv",
        "folder": Path("RPT-1"), "duration_s": 0.123, "job": None, "flags": ["a", "b"]})
    text = logs.JsonFormatter().format(record)
    assert text == json.JSONEncoder(ensure_ascii=False, default=str).encode(json.loads(text))
    assert json.loads(text)["folder"] == "RPT-1" and json.loads(text)["msg"] == "ingested Ä/ß.csv"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_disk_under_the_batched_log_is_said_once(
        capsys: pytest.CaptureFixture[str]) -> None:
    handler = logs.BatchedFile("/dev/full", maxBytes=0, backupCount=0)
    logger = logging.getLogger("accu-ingest-test-full-disk-batched")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for n in range(5):
            logger.error("line %d", n)
        logger.warning("line %d", 6)
    finally:
        logger.removeHandler(handler)
        handler.close()
    err = capsys.readouterr().err
    assert err.count("cannot write the log file /dev/full") == 1
    assert "Traceback" not in err and "again" not in err


def test_the_readable_line_is_the_standard_formatter_s_text() -> None:
    ours, standard = logs.TextFormatter(logs.TEXT_FORMAT), logging.Formatter(logs.TEXT_FORMAT)
    start = time.time()
    for created in (start, start + 0.0004, start + 0.9996, start + 1.5, start + 3600.25, 0.5):
        record = logging.makeLogRecord({"msg": "ingested %s", "args": ("a.csv",),
                                        "levelname": "INFO", "name": "worker"})
        record.created, record.msecs = created, int((created - int(created)) * 1000) + 0.0
        assert ours.format(record) == standard.format(record)


def _rotated_at_2000_bytes(path: Path) -> None:
    """The log and three rotated files of lines numbered up to 99 (``file_id``), each rotated
    one at 2,000 bytes or past it by one line at most (in bytes), the newest lines all kept."""
    kept = [path, *(path.with_name(f"{path.name}.{i}") for i in (1, 2, 3))]
    assert all(p.exists() for p in kept) and not path.with_name(f"{path.name}.4").exists()
    lines = [line for p in kept for line in p.read_bytes().splitlines()]
    longest = max(len(line) + 1 for line in lines)
    for p in kept[1:]:
        assert 2000 <= p.stat().st_size < 2000 + longest
    numbers = sorted(json.loads(line)["file_id"] for line in lines)
    assert numbers == list(range(numbers[0], 100))  # none lost in between
