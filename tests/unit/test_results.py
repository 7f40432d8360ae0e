"""The results package in process, on a real SQLite file: the kind registry is complete and
consistent with what the computations store and what ``results`` and ``export`` show; results
are superseded exactly once when they change and kept when they do not; the view orders kinds
as the registry does; and a new kind is one registry entry."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from peewee import fn
from support.pipeline import Pipeline
from support.reports import random_peaks, report

from worker.chemistry import purity
from worker.chemistry.calibration import Standard, fit_calibration
from worker.chemistry.steps import Computation, Step
from worker.record import audit, db, digest, jsontext, sql
from worker.record.models import (
    INGESTED,
    SAMPLE,
    STANDARD,
    AuditEvent,
    Injection,
    Job,
    Peak,
    Result,
    Sample,
    SourceFile,
    database,
)
from worker.results import export, kinds, store, view
from worker.results.job import point_fields, recompute_job
from worker.results.sample import recompute_sample
from worker.settings import MethodSettings, Settings

METHODS = {"default": MethodSettings(purity_min_pct=95.0, volume=2.0)}
LEVELS = {"Std_10": (10.0, 100.0), "Std_20": (20.0, 200.0), "Std_40": (40.0, 400.0)}


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[None]:
    (tmp_path / "inbox").mkdir()
    db.open_database(Settings(data_dir=tmp_path / "data", inbox=tmp_path / "inbox"))
    yield
    database.close()


def add_injection(job: Job, sample: Sample, number: int,
                  peaks: Sequence[tuple[float, float]]) -> Injection:
    """One file's injection of ``sample`` with (rt, area) peaks; Area% is left to purity."""
    name = f"{sample.sample_id}_Inj_{number}.csv"
    src = SourceFile.create(
        sha256=hashlib.sha256(f"{job.id}/{name}/{peaks}".encode()).hexdigest(), path=name,
        name=name, origin="test", size=1, mtime_ns=0, state=INGESTED, job=job)
    inj = Injection.create(sample=sample, source_file=src, number=number)
    for n, (rt, area) in enumerate(peaks, 1):
        Peak.create(injection=inj, signal="DAD1 A", number=n, rt_min=rt, area=area,
                    height=area / 10, begin_min=rt - 0.1, end_min=rt + 0.1,
                    width_min=0.05 * n)
    return inj


def recompute(job: Job) -> None:
    """What the consumer does after a file lands: each sample, then the job."""
    with database.atomic():
        samples = list(Sample.select().where(Sample.job == job))
        for s in samples:
            recompute_sample(s, METHODS)
        recompute_job(job, samples, METHODS)


@pytest.fixture
def job(opened: None) -> Job:
    """A job with three standards and one sample of two injections: every kind is computed."""
    job = Job.create(key="test/job", name="job", method="m.amx")
    for name, (level, area) in LEVELS.items():
        std = Sample.create(job=job, sample_id=name, kind=STANDARD, level=level)
        add_injection(job, std, 1, [(2.0, 1.0), (7.6, area)])
    lot = Sample.create(job=job, sample_id="LOT-A", kind=SAMPLE)
    add_injection(job, lot, 1, [(5.6, 2.0), (7.62, 150.0)])
    add_injection(job, lot, 2, [(5.6, 3.0), (7.61, 151.0)])
    recompute(job)
    return job


def current() -> list[Result]:
    return list(Result.select().where(Result.superseded == False)  # noqa: E712
                .order_by(Result.id))


def test_every_stored_kind_is_declared_and_every_declared_kind_is_shown(job: Job) -> None:
    rows = current()
    assert {r.kind for r in rows} == set(kinds.names())
    for r in rows:
        kind = kinds.get(r.kind)
        assert kind is not None
        assert (r.injection_id is not None) == (kind.row == "injection"), r.kind
        assert (r.sample_id is None) == (kind.row == "job"), r.kind
        if kind.unit != kinds.BY_METHOD:
            assert r.unit == kind.unit, r.kind
        if kind.outcomes:
            assert r.value is None and r.text in kind.outcomes, r.kind
        else:
            assert r.text is None, r.kind
    assert {r["kind"] for r in view.result_rows()} == set(kinds.names())
    assert {r["kind"] for r in export.results()} == set(kinds.names())
    # The registry's own consistency: names unique, compute only where a recompute runs it.
    assert len(set(kinds.names())) == len(kinds.KINDS)
    for k in kinds.KINDS:
        assert (k.compute is not None) == (k.scope == "sample"), k.name
        assert k.row != "job" or k.scope == "job", k.name


def test_unchanged_rows_stay_and_changed_ones_are_replaced_exactly_once(job: Job) -> None:
    before = {r.id: r for r in current()}
    recompute(job)
    assert {r.id for r in current()} == set(before), "an unchanged recompute rewrote rows"

    # A third injection of LOT-A: its mean purity, RSD, quantity and acceptance inputs change;
    # the first two injections' purity and the curve do not.
    lot = Sample.get(Sample.sample_id == "LOT-A")
    add_injection(job, lot, 3, [(5.6, 2.5), (7.6, 160.0)])
    recompute(job)
    after = current()
    kept = [r for r in after if r.id in before]
    retired = Result.select().where(Result.superseded == True)  # noqa: E712
    assert {r.id for r in retired} == set(before) - {r.id for r in kept}
    kept_lot = {(r.kind, r.injection.number if r.injection_id else None)
                for r in kept if r.sample_id == lot.id}
    assert kept_lot == {("purity_injection", 1), ("purity_injection", 2)}
    assert {r.kind for r in retired} == {"purity", "purity_rsd", "concentration", "amount",
                                         "acceptance", "identity"}
    # Exactly one current row per kind, sample and injection: replaced, never duplicated.
    keys = [(r.kind, r.sample_id, r.injection_id) for r in after]
    assert len(keys) == len(set(keys))
    assert sum(1 for r in after if r.sample_id == lot.id and r.kind == "purity_injection") == 3
    assert all(r.id in before for r in after if r.sample_id is None)  # the curve stayed


def test_replace_refuses_a_kind_the_registry_does_not_declare(job: Job) -> None:
    lot = Sample.get(Sample.sample_id == "LOT-A")
    stray = Computation(kind="tailing", value=1.2, unit=None, inputs={}, calc_version="x/1",
                        steps=[Step(label="s", formula="f", inputs={}, value=1.2)])
    count = Result.select().count()
    with pytest.raises(ValueError, match=r"'tailing'.*kinds\.py"), database.atomic():
        store.replace(job.id, lot, [(None, stray)], "sample")
    assert Result.select().count() == count


def ordered_kinds(rows: list[dict[str, object]]) -> dict[object, list[object]]:
    by_sample: dict[object, list[object]] = {}
    for r in rows:
        kinds_seen = by_sample.setdefault(r["sample"], [])
        if r["kind"] not in kinds_seen:
            kinds_seen.append(r["kind"])
    return by_sample


def test_view_orders_kinds_as_the_registry_does(job: Job,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    rows = view.result_rows()
    assert rows[0]["sample"] is None  # the job's own rows (its curve) first
    shown = ordered_kinds(rows)
    assert shown[None] == list(kinds.names("job", job_row=True))
    assert shown["LOT-A"] == list(kinds.names(job_row=False))
    r2 = next(r for r in rows if r["kind"] == "calibration_r2")
    assert f"{r2['value']:.5f}" in view.format_result(r2)
    identity_row = next(r for r in rows if r["kind"] == "identity" and r["sample"] == "LOT-A")
    assert "ΔRT" in view.format_result(identity_row)

    # Reverse the registry: the view follows it.
    monkeypatch.setattr(kinds, "KINDS", tuple(reversed(kinds.KINDS)))
    assert ordered_kinds(view.result_rows())["LOT-A"] == list(reversed(shown["LOT-A"]))


def main_peak_width(injections: Sequence[purity.Injection], sample: str,
                    analyte: str | None) -> list[Computation]:
    """A stand-in for a new chemistry module: the main peak's width, per injection."""
    out = []
    for inj in injections:
        main = purity.select_main_peak(inj.peaks)
        width = inj.peaks[main.index].width_min if main else None  # type: ignore[attr-defined]
        out.append(Computation(
            kind="main_peak_width", value=width, unit="min", calc_version="width/1",
            inputs={"injection": inj.label, "sample": sample, "analyte": analyte},
            steps=[Step(label="width", formula="main peak's width", inputs={}, value=width)]))
    return out


def test_a_new_kind_is_one_registry_entry(job: Job, monkeypatch: pytest.MonkeyPatch) -> None:
    width = kinds.Kind("main_peak_width", "sample", "injection", "min", compute=main_peak_width)
    monkeypatch.setattr(kinds, "KINDS", (*kinds.KINDS, width))
    lot = Sample.get(Sample.sample_id == "LOT-A")
    recompute(job)
    stored = [r for r in current() if r.kind == "main_peak_width"]
    assert len(stored) == 5  # three standards' injections and LOT-A's two
    assert {json.loads(r.inputs)["injection"] for r in stored if r.sample_id == lot.id} == \
        {"Inj_1", "Inj_2"}
    assert all(r.value == pytest.approx(0.1) for r in stored)  # the second peak's width
    assert ordered_kinds(view.result_rows())["LOT-A"][-1] == "main_peak_width"

    # Its old rows are superseded with the rest of the sample's kinds: no tuple to forget.
    Peak.update(width_min=0.3).where(Peak.number == 2).execute()
    recompute(job)
    stored = [r for r in current() if r.kind == "main_peak_width"]
    assert len(stored) == 5 and all(r.value == pytest.approx(0.3) for r in stored)


def result_statements(root: Path, files: int) -> int:
    """Statements on the result table while one chunk of ``files`` new samples is ingested."""
    pipeline = Pipeline.open(root)
    try:
        names = [f"S-{i}_Inj_1_Report.csv" for i in range(files)]
        for i, name in enumerate(names):
            pipeline.drop(name, report(random_peaks(random.Random(i))))
        rows = pipeline.take(*names)
        states, seen = pipeline.ingest_watched(rows)
        assert set(states.values()) == {"ingested"}
        assert Result.select().where(Result.kind == "purity").count() == files
        assert digest.verify_rows().ok and audit.verify().ok
        return sum(1 for text in seen if '"result"' in text)
    finally:
        pipeline.close()


def test_a_chunk_writes_its_results_in_statements_that_do_not_grow_with_its_samples(
        tmp_path: Path) -> None:
    """Each statement is a round trip to a database server: a chunk of many samples must read,
    write and digest their results together, not a query and an insert per sample. A list is
    cut into pieces of the fixed lengths sql.SIZES, so one sample's statements come back at
    most once per length, never once per sample."""
    one = result_statements(tmp_path / "one", 1)
    many = result_statements(tmp_path / "many", 30)
    assert many <= one * len(sql.SIZES) < one * 30


def test_a_result_replaced_twice_in_one_batch_is_superseded_by_the_second(job: Job) -> None:
    """Inside ``batched`` rows wait for the flush; a second replace of the same kinds must
    still see the first one's rows (with their ids) and supersede them."""
    lot = Sample.get(Sample.sample_id == "LOT-A")
    own = kinds.names("sample")
    before = {r.id for r in current() if r.sample_id == lot.id and r.kind in own}
    first_seq = AuditEvent.select(fn.MAX(AuditEvent.seq)).scalar()

    def purity_of(value: float) -> store.Wanted:
        return (None, Computation(kind="purity", value=value, unit="%", inputs={"v": value},
                                  calc_version="test/1",
                                  steps=[Step(label="s", formula="f", inputs={}, value=value)]))

    with database.atomic(), store.batched([lot]):
        assert store.replace(job.id, lot, [purity_of(1.0)], "sample")
        assert store.replace(job.id, lot, [purity_of(2.0)], "sample")
    now = [r for r in current() if r.sample_id == lot.id and r.kind in own]
    assert [(r.kind, r.value) for r in now] == [("purity", 2.0)]
    events = [(e.event, json.loads(e.details)) for e in AuditEvent.select()
              .where(AuditEvent.seq > first_seq).order_by(AuditEvent.seq)]
    assert [name for name, _ in events] == ["computed", "superseded", "computed", "superseded"]
    first, second = events[0][1]["results"][0]["result"], events[2][1]["results"][0]["result"]
    assert Result.get_by_id(first).superseded and not Result.get_by_id(second).superseded
    assert {r["result"] for r in events[1][1]["results"]} == before
    assert [r["result"] for r in events[3][1]["results"]] == [first]
    assert digest.verify_rows().ok and audit.verify().ok


def test_a_chunk_reads_current_results_by_sample_not_through_every_current_result(
        job: Job) -> None:
    """The current results of a chunk's samples must be looked up by sample (or job): read
    through the index of the superseded flag, which holds every current result of the
    database, each chunk cost more the more the lab had ingested."""
    lot = Sample.get(Sample.sample_id == "LOT-A")
    seen: list[tuple[str, object]] = []
    run = database.obj.execute_sql

    def capturing(text: str, params: object = None, *args: object) -> object:
        seen.append((text, params))
        return run(text, params, *args)

    database.obj.execute_sql = capturing
    try:
        with database.atomic(), store.batched([lot]):
            recompute_sample(lot, METHODS)
    finally:
        del database.obj.execute_sql
    reads = [(t, p) for t, p in seen if t.lstrip().upper().startswith("SELECT")
             and 'FROM "result"' in t and "superseded" in t]
    assert reads
    for text, params in reads:
        plan = [row[-1] for row in database.execute_sql(f"EXPLAIN QUERY PLAN {text}", params)]
        assert not any("result_superseded" in step or step.startswith("SCAN") for step in plan), \
            plan


@given(st.lists(st.tuples(st.sampled_from([1.0, 12, 25.0, 50, 100.0, 250]),
                          st.floats(min_value=-1e6, max_value=1e6),
                          st.none() | st.floats(min_value=0, max_value=60)), max_size=12),
       st.sampled_from([None, {12: 12.5}]), st.sampled_from([(), [250], [1.0, 50]]))
def test_calibration_points_are_stored_as_asdict_made_them(
        found: list[tuple[float, float, float | None]], corrections: dict[float, float] | None,
        excluded: list[float]) -> None:
    """``point_fields`` skips asdict's deep copy: the same keys, in the same order, with the
    same values, so a calibration row's inputs are the same text."""
    curve = fit_calibration([Standard(f"{i}_Report.csv", level, area, rt)
                             for i, (level, area, rt) in enumerate(found)],
                            corrections=corrections, exclude_levels=excluded)
    for point in curve.points:
        made = point_fields(point)
        assert list(made.items()) == list(dataclasses.asdict(point).items())
        assert _TEXT(made) == _TEXT(dataclasses.asdict(point))


_TEXT = jsontext.encoder(sort_keys=True, default=str)  # as results.store encodes inputs
