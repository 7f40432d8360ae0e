"""A file's rows digest made from the values its writer bound must be the digest of the rows as
the database hands them back (``digest.file_rows``), which ``audit verify --rows`` recomputes;
a value the database would store as something else must make the writer read them back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.pipeline import Pipeline

from worker.record import digest, ledger, sql
from worker.record.models import AuditEvent, Chromatogram, Injection, Job, Peak, Sample


def _files(corpus: Path) -> list[tuple[str, bytes]]:
    """Every corpus file outside an instrument folder, under a folder of its own format."""
    found = []
    for path in sorted(corpus.rglob("*")):
        rel = path.relative_to(corpus)
        if path.is_file() and path.suffix.lower() != ".md" and not any(
                part.upper().endswith(".D") for part in rel.parts[:-1]):
            found.append((f"{rel.parts[0]}/{path.name}", path.read_bytes()))
    return found


@pytest.fixture
def read_back(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The files whose rows ``ledger.finishing`` had to read back to digest them."""
    asked: list[int] = []
    real = digest.files_rows

    def files_rows(file_ids: Any) -> dict[int, str]:
        asked.extend(file_ids)
        return real(file_ids)

    monkeypatch.setattr(digest, "files_rows", files_rows)
    yield asked


@pytest.mark.parametrize("where", ["sqlite", "postgresql"])
def test_every_corpus_file_carries_the_digest_of_its_rows_as_stored(
        tmp_path: Path, corpus: Path, read_back: list[int], where: str,
        request: pytest.FixtureRequest) -> None:
    """Peaks, traces, times and units of every format, in one chunk: each ``ingested`` event's
    ``rows`` is the digest of the rows read back, and none of them had to be read back."""
    url = {} if where == "sqlite" else {"database_url": request.getfixturevalue("pg")}
    pipeline = Pipeline.open(tmp_path, **url)
    try:
        files = _files(corpus)
        for name, data in files:
            pipeline.drop(name, data)
        rows = pipeline.take(*dict.fromkeys(name for name, _ in files))
        states = pipeline.ingest(rows)
        ingested = [r.id for r in rows if states.get(r.id) == "ingested"]
        with_peaks = {i.source_file_id for i in Injection.select().join(Peak).distinct()}
        with_traces = {i.source_file_id for i in Injection.select().join(Chromatogram)}
        assert len(ingested) > 15 and len(with_peaks) > 5 and len(with_traces) > 5

        recorded = {e.source_file_id: json.loads(e.details)["rows"] for e in AuditEvent.select()
                    .where(AuditEvent.event == "ingested")}
        assert recorded == {file_id: digest.file_rows(file_id) for file_id in recorded}
        assert not set(read_back) & (with_peaks | with_traces)
        assert digest.verify_rows().ok
    finally:
        pipeline.close()


_FLOATS = st.one_of(st.just(-0.0), st.floats(allow_nan=False, allow_infinity=False),
                    st.integers(-2**53, 2**53))
_TEXT = st.text(max_size=8)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(number=st.one_of(st.integers(0, 10**6), st.floats(0, 1e6)),
       acquired=st.one_of(st.none(), st.datetimes(), st.datetimes(timezones=st.just(UTC))),
       dilution=st.one_of(st.none(), _FLOATS),
       peaks=st.lists(st.tuples(_TEXT, st.one_of(st.integers(0, 99), st.floats(0, 99)),
                                _FLOATS, _FLOATS, st.one_of(st.none(), _FLOATS),
                                st.one_of(st.none(), _TEXT)),
                      max_size=4))
def test_a_digest_from_bound_values_is_the_digest_read_back_or_none(
        pipeline: Pipeline, number: int | float, acquired: datetime | None,
        dilution: float | None, peaks: list[tuple[Any, ...]]) -> None:
    """Whatever the values' Python types, ``file_written`` gives the digest of the rows as
    stored, or None (an int bound to a float column comes back a float; a float bound to an
    integer column, or an aware time, is left to be read back)."""
    with pipeline.database.atomic() as txn:
        file_id = ledger.register_many([ledger.Seen("x.csv", 1, 1, "0" * 64, 0, 0)],
                                       "test", 60)[0][0].id
        [job] = sql.insert(Job, ("key", "name", "created_at"), [("k", "k", datetime(2026, 1, 1))],
                           returning=True)
        [sample] = sql.insert(Sample, ("job_id", "sample_id", "analyte", "identity", "kind"),
                              [(job, "s", "", "", "sample")], returning=True)
        injection = (sample, file_id, number, acquired, dilution)
        [injection_id] = sql.insert(Injection, ("sample_id", "source_file_id", "number",
                                                "acquired_at", "dilution_factor", "superseded"),
                                    [(*injection, False)], returning=True)
        values = [(injection_id, signal, n, rt, area, None, height, None, None, None, None,
                   name) for signal, n, rt, area, height, name in peaks]
        peak_ids = sql.insert(Peak, ("injection_id", "signal", "number", "rt_min", "area",
                                     "area_pct", "height", "begin_min", "end_min", "width_min",
                                     "peak_type", "name"), values, returning=True)
        tails = [digest.tail("peak", v[1:]) for v in values]
        made = None if None in tails else digest.file_written(
            (injection_id, *injection),
            [(i, injection_id, end) for i, end in zip(peak_ids, tails, strict=True)], [])
        stored = digest.file_rows(file_id)
        txn.rollback()
    assert made is None or made == stored
    negative_zero = [v for v in (dilution, *(v for p in peaks for v in p))
                     if type(v) is float and str(v) == "-0.0"]
    if (type(number) is int and (acquired is None or acquired.tzinfo is None)
            and all(type(p[1]) is int for p in peaks) and not negative_zero):
        assert made is not None  # the usual values: digested without a read
