"""Sample results worked out before the write lock (worker.results.ahead) are used only for the
input they were made from: with two consumers writing the same sample, the results stored are
those the exact computation makes from every injection that ended up current."""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path
from typing import Any

import pytest
from support.pipeline import Pipeline
from support.reports import random_peaks, report

from worker.chemistry import purity
from worker.record import audit
from worker.record.models import Result, Sample, database
from worker.results import ahead, kinds, store
from worker.results.inputs import labelled, peak_tables
from worker.results.job import recompute_job
from worker.results.sample import recompute_sample
from worker.results.store import batched


def _drop(pipeline: Pipeline, names: list[str], seed: int) -> list[Any]:
    for i, name in enumerate(names):
        pipeline.drop(name, report(random_peaks(random.Random(seed + i))))
    return pipeline.take(*names)


def _exact_recompute_changes_nothing(pipeline: Pipeline) -> None:
    """Every sample and job computed again the exact way (no results from ahead) records no
    event: what is stored is what it makes."""
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


def _stored_texts_are_exact(pipeline: Pipeline) -> None:
    """Every current sample-scope row holds the inputs, trace and flags the exact computation
    encodes (the signature ``replace`` compares covers the inputs, not the trace)."""
    for sample in Sample.select():
        tables = peak_tables(sample, pipeline.settings.methods)
        exact = [c for compute in kinds.sample_computations()
                 for c in compute(labelled(tables), sample.sample_id, sample.analyte or None)]
        stored = (Result.select().where(Result.sample == sample.id,
                                        Result.superseded == False,  # noqa: E712
                                        Result.kind.in_(kinds.names("sample"))))
        assert sorted((r.inputs, r.trace, r.flags) for r in stored) == sorted(
            store.texts(c) for c in exact)


def _hits(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each sample computation under the lock found its result worked out ahead."""
    seen: list[bool] = []
    real = ahead.computed

    def computed(compute: Any, tables: Any, sample_id: str, analyte: str | None) -> Any:
        known = getattr(ahead._using, "known", None) or {}
        seen.append((compute, sample_id, analyte, ahead._input(tables)) in known)
        return real(compute, tables, sample_id, analyte)

    monkeypatch.setattr(ahead, "computed", computed)
    return seen


def test_a_chunk_uses_the_results_it_worked_out_before_the_lock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Samples new in the chunk and samples with stored injections alike: each purity and each
    main peak is found ahead, and what is stored is what the exact computation makes."""
    hits = _hits(monkeypatch)
    chosen_under_lock: list[int] = []
    real_choice = purity.select_main_peak

    def select_main_peak(peaks: Any) -> Any:
        if getattr(ahead._using, "known", None) is not None:
            chosen_under_lock.append(len(peaks))
        return real_choice(peaks)

    monkeypatch.setattr(purity, "select_main_peak", select_main_peak)
    pipeline = Pipeline.open(tmp_path)
    try:
        first = _drop(pipeline, [f"lot/S-{i % 2}_Inj_{i}_Report.csv" for i in range(1, 4)], 1)
        assert set(pipeline.ingest(first).values()) == {"ingested"}
        second = _drop(pipeline, [f"lot/S-{i % 3}_Inj_{i}_Report.csv" for i in range(4, 8)], 9)
        assert set(pipeline.ingest(second).values()) == {"ingested"}
        assert hits and all(hits)
        assert chosen_under_lock == []  # each main peak was chosen before the lock too
        _exact_recompute_changes_nothing(pipeline)
        _stored_texts_are_exact(pipeline)
        assert audit.verify().ok
    finally:
        pipeline.close()


def test_two_consumers_writing_one_sample_store_the_purity_of_all_its_injections(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Consumer A works out sample S-1 from its stored injection and its own two; before A
    takes the write lock, consumer B commits a third injection of S-1. A's input is then not
    the one it worked out: A computes S-1 under the lock, from all four injections."""
    hits = _hits(monkeypatch)
    pipeline = Pipeline.open(tmp_path)
    try:
        stored = _drop(pipeline, ["lot/S-1_Inj_1_Report.csv"], 1)
        assert set(pipeline.ingest(stored).values()) == {"ingested"}
        rows_a = _drop(pipeline, ["lot/S-1_Inj_2_Report.csv", "lot/S-1_Inj_3_Report.csv"], 2)
        rows_b = _drop(pipeline, ["lot/S-1_Inj_4_Report.csv"], 4)
        states_b: dict[int, str] = {}
        real = ahead.foresee
        b_done: list[bool] = []

        def foresee_then_b(coming: Any, methods: Any) -> Any:
            found = real(coming, methods)
            if not b_done:  # A has worked its results out: B writes, in its own thread
                b_done.append(True)
                b = threading.Thread(target=lambda: states_b.update(pipeline.ingest(rows_b)))
                b.start()
                b.join()
            return found

        monkeypatch.setattr(ahead, "foresee", foresee_then_b)
        hits.clear()
        states_a = pipeline.ingest(rows_a)
        assert set(states_a.values()) == set(states_b.values()) == {"ingested"}
        # B found its own; A found none for S-1 (B's injection changed its input).
        assert hits[0] is True and hits[1:] and not any(hits[1:])

        purity = Result.get(Result.kind == "purity", Result.superseded == False)  # noqa: E712
        assert json.loads(purity.inputs)["injections"] == [f"Inj_{i}" for i in range(1, 5)]
        _exact_recompute_changes_nothing(pipeline)
        _stored_texts_are_exact(pipeline)
        assert audit.verify().ok
    finally:
        pipeline.close()
