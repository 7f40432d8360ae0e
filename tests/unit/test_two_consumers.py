"""Two consumers writing one sample: what a chunk makes before the write lock (its files' peak
rows, the ends of their digest lines, their job folder and sample name: ``ingest._prepared``)
depends on each file alone, so another consumer committing the same sample in between changes
none of it. The rows, results and digests stored are those of the exact path."""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path
from typing import Any

import pytest
from support.pipeline import Pipeline
from support.reports import random_peaks, report

from worker.consume import ingest
from worker.record import audit, digest
from worker.record.models import AuditEvent, Result, Sample, database
from worker.results.job import recompute_job
from worker.results.sample import recompute_sample
from worker.results.store import batched


def _drop(pipeline: Pipeline, names: list[str], seed: int) -> list[Any]:
    for i, name in enumerate(names):
        pipeline.drop(name, report(random_peaks(random.Random(seed + i))))
    return pipeline.take(*names)


def _exact_recompute_changes_nothing(pipeline: Pipeline) -> None:
    """Every sample and job computed again from the stored rows records no event: what is
    stored is what the computation makes of every injection that ended up current."""
    with database.atomic() as txn, audit.held() as events:
        samples = list(Sample.select())
        with batched(samples):
            for sample in samples:
                recompute_sample(sample, pipeline.settings.methods)
            for job in {s.job_id: s.job for s in samples}.values():
                recompute_job(job, [s for s in samples if s.job_id == job.id],
                              pipeline.settings.methods)
        found = list(events)
        events.clear()
        txn.rollback()
    assert found == []


def test_two_consumers_writing_one_sample_store_the_rows_and_results_of_all_its_injections(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Consumer A has parsed and prepared two injections of S-1 (a third is stored, and A
    creates S-2); before A takes the write lock, consumer B commits a fourth injection of S-1
    and a first of S-2. A's files still get their own rows and digests, S-1's purity covers
    all four injections, and S-2 is one sample, not two."""
    pipeline = Pipeline.open(tmp_path)
    try:
        stored = _drop(pipeline, ["lot/S-1_Inj_1_Report.csv"], 1)
        assert set(pipeline.ingest(stored).values()) == {"ingested"}
        rows_a = _drop(pipeline, ["lot/S-1_Inj_2_Report.csv", "lot/S-1_Inj_3_Report.csv",
                                  "lot/S-2_Inj_1_Report.csv"], 2)
        rows_b = _drop(pipeline, ["lot/S-1_Inj_4_Report.csv", "lot/S-2_Inj_2_Report.csv"], 5)
        states_b: dict[int, str] = {}
        real = ingest.commit_chunk
        b_done: list[bool] = []

        def b_first(settings: Any, works: Any, owner: str) -> None:
            if not b_done:  # A has prepared its chunk: B writes, in its own thread
                b_done.append(True)
                b = threading.Thread(target=lambda: states_b.update(pipeline.ingest(rows_b)))
                b.start()
                b.join()
            real(settings, works, owner)

        monkeypatch.setattr(ingest, "commit_chunk", b_first)
        states_a = pipeline.ingest(rows_a)
        assert set(states_a.values()) == set(states_b.values()) == {"ingested"}
        assert len(states_a) == 3 and len(states_b) == 2

        assert Sample.select().where(Sample.sample_id == "S-2").count() == 1
        purity = {s.sample_id: json.loads(r.inputs)["injections"] for r in Result.select()
                  .where(Result.kind == "purity", Result.superseded == False)  # noqa: E712
                  for s in [Sample.get_by_id(r.sample_id)]}
        assert purity == {"S-1": [f"Inj_{i}" for i in range(1, 5)], "S-2": ["Inj_1", "Inj_2"]}
        recorded = {e.source_file_id: json.loads(e.details)["rows"] for e in AuditEvent.select()
                    .where(AuditEvent.event == "ingested")}
        assert recorded == {file_id: digest.file_rows(file_id) for file_id in recorded}
        assert len(recorded) == 6 and digest.verify_rows().ok
        _exact_recompute_changes_nothing(pipeline)
        assert audit.verify().ok
    finally:
        pipeline.close()
