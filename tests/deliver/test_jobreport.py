"""Job reports in the test process: a job is reported once its files settle and none of its
files waits, again when it changes, never twice for the same content."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from support.pipeline import Pipeline

from worker.deliver.jobreport import JobReports
from worker.deliver.state import State

SETTLE = 0.5


@pytest.fixture
def reports(tmp_path: Path) -> Pipeline:
    p = Pipeline.open(tmp_path, job_settle_seconds=SETTLE)
    yield p
    p.close()


def settled(jobs: JobReports) -> list[Path]:
    time.sleep(SETTLE + 0.2)
    return jobs.poll()


def test_reported_when_settled_and_again_only_when_changed(reports: Pipeline,
                                                           corpus: Path) -> None:
    state = State(reports.settings.reports_dir / "state.json")
    jobs = JobReports(reports.settings, state)
    std = corpus / "agilent-1290"
    for name in ("12_Report.csv", "25_Report.csv"):
        reports.drop(f"seq/{name}", (std / name).read_bytes())
    reports.ingest(reports.take("seq/12_Report.csv", "seq/25_Report.csv"))
    assert jobs.poll() == []  # not settled yet
    [path] = settled(jobs)
    first = json.loads(path.read_text(encoding="utf-8"))
    assert [s["sample_id"] for s in first["samples"]] == ["Std_12", "Std_25"]
    assert all(len(f["sha256"]) == 64 for f in first["files"])
    assert settled(jobs) == []  # nothing new: no second report

    # A file of the job waits (queued): the job is not finished.
    reports.drop("seq/50_Report.csv", (std / "50_Report.csv").read_bytes())
    rows = reports.take("seq/50_Report.csv")
    assert settled(jobs) == []
    reports.ingest(rows)
    [again] = settled(jobs)
    second = json.loads(again.read_text(encoding="utf-8"))
    assert again == path and len(second["files"]) == 3
    assert second["idempotency_key"] != first["idempotency_key"]
    assert [r["kind"] for r in second["job_results"]][:1] == ["calibration_intercept"]
    assert state.counts()["job_reports"]["written"] == 2


def test_state_survives_a_restart(reports: Pipeline, corpus: Path) -> None:
    path = reports.settings.reports_dir / "state.json"
    reports.drop("seq/12_Report.csv", (corpus / "agilent-1290" / "12_Report.csv").read_bytes())
    reports.ingest(reports.take("seq/12_Report.csv"))
    assert len(settled(JobReports(reports.settings, State(path)))) == 1
    assert settled(JobReports(reports.settings, State(path))) == []  # a new process: told
