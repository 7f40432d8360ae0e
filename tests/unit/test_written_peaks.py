"""A chunk's recompute takes the peaks of the injections it has just inserted from what it
inserted, not from a query: the same values the database hands back, so the same results."""

from __future__ import annotations

import random
from pathlib import Path

from support.pipeline import Pipeline
from support.reports import random_peaks, report
from test_two_consumers import _exact_recompute_changes_nothing

from worker.record import audit, digest
from worker.record.models import Result
from worker.results.inputs import StoredPeak, stored_peaks


def test_peaks_as_bound_are_the_peaks_as_read_back_or_none() -> None:
    row = ("DAD1A", 1, 7, 100, 12.5, None, 1.25, 2.5, None, "BB", None)
    assert stored_peaks([row]) == [StoredPeak("DAD1A", 7.0, 100.0, 12.5, None, 1.25, 2.5, None)]
    assert type(stored_peaks([row])[0].rt_min) is float  # type: ignore[index]
    # SQLite hands -0.0 back as 0.0, and a number that is not finite is no number at all.
    for odd in (-0.0, float("nan"), float("inf"), True, "7"):
        assert stored_peaks([("DAD1A", 1, odd, 100.0, None, None, None, None, None, None,
                              None)]) is None


def test_a_chunk_reads_back_no_peaks_it_wrote_and_stores_the_results_of_its_rows(
        tmp_path: Path) -> None:
    pipeline = Pipeline.open(tmp_path)
    try:
        names = [f"lot/{name}_Report.csv" for name in
                 ("S-1_Inj_1", "S-1_Inj_2", "S-2_Inj_1", "STD-1_Inj_1", "STD-1_Inj_2")]
        for i, name in enumerate(names):
            pipeline.drop(name, report(random_peaks(random.Random(i))))
        rows = pipeline.take(*names)
        states, seen = pipeline.ingest_watched(rows)
        assert set(states.values()) == {"ingested"}
        assert not [text for text in seen if text.startswith("SELECT injection_id, signal")]
        assert Result.select().where(Result.kind == "purity").count() == 3
        _exact_recompute_changes_nothing(pipeline)
        assert digest.verify_rows().ok and audit.verify().ok
    finally:
        pipeline.close()
