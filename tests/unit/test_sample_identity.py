"""One printed sample name, three samples: files that say they are different samples (a standard
at level 3, a standard at level 2, an unknown) are never merged into one Sample, and their
purity/quantity results never mix sample types; the contradiction is flagged on every result.

The files are the real LabSolutions export of the corpus (PlethoraChutney/Appia, MIT; see
tests/corpus/README.md) with only its [Sample Information] Sample Type and Level lines changed,
as three exports of one sample name at different types and levels look.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.corpus import corpus_bytes
from support.pipeline import Pipeline

from worker.record.models import Injection, Result, Sample
from worker.results.sample import CONTRADICTORY_SAMPLE
from worker.settings import MethodSettings

VARIANTS = {"std-level3.txt": (b"1:Standard", b"3"), "std-level2.txt": (b"1:Standard", b"2"),
            "unknown.txt": (b"0:Unknown", b"0")}


@pytest.fixture
def pipe(tmp_path: Path) -> Iterator[Pipeline]:
    p = Pipeline.open(tmp_path, methods={"default": MethodSettings(purity_min_pct=95.0)})
    yield p
    p.close()


def _variant(sample_type: bytes, level: bytes) -> bytes:
    data = corpus_bytes("shimadzu-labsolutions", "new-shim-1.txt")
    data = data.replace(b"Sample Type\t0:Unknown\r\n", b"Sample Type\t" + sample_type + b"\r\n", 1)
    return data.replace(b"\r\nLevel\t0\r\n", b"\r\nLevel\t" + level + b"\r\n", 1)


def test_three_files_of_one_name_are_three_samples_flagged_never_averaged(
        pipe: Pipeline) -> None:
    for name, (sample_type, level) in VARIANTS.items():
        pipe.drop(f"run1/{name}", _variant(sample_type, level))
    rows = pipe.take(*(f"run1/{name}" for name in VARIANTS))
    assert set(pipe.ingest(rows).values()) == {"ingested"}

    samples = list(Sample.select().order_by(Sample.identity))
    assert len({s.sample_id for s in samples}) == 1  # the name as printed, once
    assert sorted(s.identity for s in samples) == [
        "sample; vial 21", "standard; level 2; vial 21", "standard; level 3; vial 21"]
    for sample in samples:
        [injection] = Injection.select().where(Injection.sample == sample)
        results = list(Result.select().where(Result.sample == sample,
                                             Result.superseded == False))  # noqa: E712
        [purity] = [r for r in results if r.kind == "purity"]
        assert json.loads(purity.inputs)["injections"] == ["Inj_1"]
        for result in results:
            inputs = json.loads(result.inputs)
            # Only this sample's own injection went into it ...
            assert inputs.get("injections", ["Inj_1"]) == ["Inj_1"]
            # ... and the other samples of its name are named, with the flag.
            assert CONTRADICTORY_SAMPLE in json.loads(result.flags), (result.kind, inputs)
            assert sorted(inputs["same_name_as"]) == sorted(
                s.identity for s in samples if s.id != sample.id)
        assert injection.number == 1


def test_files_that_agree_are_one_sample_without_the_flag(pipe: Pipeline) -> None:
    first = _variant(b"1:Standard", b"3")
    second = first.replace(b"3/10/2022 9:53:59 PM", b"3/10/2022 10:13:59 PM", 1)
    pipe.drop("run1/a.txt", first)
    pipe.drop("run1/b.txt", second)
    rows = pipe.take("run1/a.txt", "run1/b.txt")
    assert set(pipe.ingest(rows).values()) == {"ingested"}
    [sample] = Sample.select()
    assert sample.identity == "standard; level 3; vial 21"
    assert Injection.select().where(Injection.sample == sample).count() == 2
    assert all(CONTRADICTORY_SAMPLE not in json.loads(r.flags) for r in Result.select())


def test_an_unsettled_acquisition_date_is_flagged_on_the_ingest(pipe: Pipeline) -> None:
    """The real export with its date written 24-hour and day/month open (``3/10/2022 21:53:59``):
    ingested, the time left empty rather than guessed, the reason in the audit trail."""
    from worker.record.models import AuditEvent, SourceFile
    data = corpus_bytes("shimadzu-labsolutions", "new-shim-1.txt").replace(
        b"Acquired\t3/10/2022 9:53:59 PM", b"Acquired\t3/10/2022 21:53:59", 1)
    row = pipe.run("run1/open-date.txt", data)
    assert SourceFile.get_by_id(row.id).state == "ingested"
    [injection] = Injection.select()
    assert injection.acquired_at is None
    [event] = AuditEvent.select().where(AuditEvent.source_file_id == row.id,
                                        AuditEvent.event == "ingested")
    [flag] = json.loads(event.details)["flags"]
    assert "3/10/2022 21:53:59" in flag and "date_order" in flag


def test_the_results_view_tells_namesakes_apart(pipe: Pipeline) -> None:
    from worker.results import view
    for name, (sample_type, level) in VARIANTS.items():
        pipe.drop(f"run1/{name}", _variant(sample_type, level))
    pipe.ingest(pipe.take(*(f"run1/{name}" for name in VARIANTS)))
    lines = [view.format_result(r) for r in view.result_rows("Tommy-S-1-031022")
             if r["kind"] == "purity"]
    assert len(lines) == 3
    for identity in ("standard; level 3; vial 21", "standard; level 2; vial 21",
                     "sample; vial 21"):
        assert sum(f"({identity})" in line for line in lines) == 1
