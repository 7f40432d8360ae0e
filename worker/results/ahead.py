"""Sample-scope results worked out before the write lock, and used under it only when the
sample's peak tables turn out to be exactly those they were worked out from.

A chunk's transaction holds SQLite's single write lock, and computing each touched sample's
purity from its peak tables was a large part of it. Before the transaction, ``foresee`` reads
what the database holds of the chunk's samples (outside any lock, as claims are read) and adds
the injections the chunk is about to write, then runs each sample-scope computation on those
tables. Under the lock the recompute reads the tables as they really are and asks
``computed``, which hands back a result only for the very same input: the same labelled peak
tables (every value of every peak, in order), the same sample name and analyte. A computation
is a pure function of that input, so a result found is the result the recompute would make;
anything another consumer wrote meanwhile (a new injection of the same sample, a superseded
one) changes the input, finds nothing, and is computed under the lock as before.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.chemistry.purity import MainPeak, select_main_peak
from worker.chemistry.steps import Computation
from worker.parsers.base import ParsedFile
from worker.record import sql
from worker.record.models import Job, Sample
from worker.results import kinds, store
from worker.results.inputs import (
    SAMPLES_INJECTIONS_SQL,
    CurrentInjection,
    StoredPeak,
    Tables,
    injection_label,
    labelled,
    mains_known,
    stored_peaks,
    tables_of,
)
from worker.settings import MethodSettings

Input = tuple[tuple[str, tuple[StoredPeak, ...]], ...]  # labelled tables, as compared
Key = tuple[kinds.SampleComputation, str, "str | None", Input]
_using = threading.local()
# Ids for the injections a chunk will write, above any the database has handed out: they only
# order a sample's tables (after its stored injections, in the chunk's order), as real ids will.
_AHEAD = 1 << 62


@dataclass(frozen=True)
class Coming:
    """One file of a chunk as it will be written: its job's key, its sample, its injection."""

    job_key: str
    sample_id: str
    analyte: str
    identity: str
    number: int
    file_name: str
    parsed: ParsedFile
    peaks: Sequence[Sequence[Any]]  # its peak rows as ingest inserts them (no injection id)


def _input(tables: Tables) -> Input:
    return tuple((injection_label(inj), tuple(peaks)) for inj, peaks in tables)


@dataclass
class Foreseen:
    """What ``foresee`` worked out: each sample computation's result by its input, and each
    table's main peak by its peaks."""

    results: dict[Key, list[Computation]] = field(default_factory=dict)
    mains: dict[tuple[StoredPeak, ...], MainPeak | None] = field(default_factory=dict)
    texts: dict[int, tuple[Computation, store.Texts]] = field(default_factory=dict)  # by id


@contextlib.contextmanager
def using(foreseen: Foreseen) -> Iterator[None]:
    """Inside, ``computed``, ``inputs.main_peaks`` and ``store.replace`` take what ``foresee``
    worked out."""
    before = getattr(_using, "known", None)
    _using.known = foreseen.results
    try:
        with mains_known(foreseen.mains), store.texts_known(foreseen.texts):
            yield
    finally:
        _using.known = before


def computed(compute: kinds.SampleComputation, tables: Tables, sample_id: str,
             analyte: str | None) -> list[Computation]:
    """``compute`` on the labelled ``tables``: worked out already when ``foresee`` had this
    very input, else now."""
    known: dict[Key, list[Computation]] | None = getattr(_using, "known", None)
    if known is not None:
        found = known.get((compute, sample_id, analyte, _input(tables)))
        if found is not None:
            return found
    return list(compute(labelled(tables), sample_id, analyte))


def foresee(coming: Sequence[Coming], methods: Mapping[str, MethodSettings]) -> Foreseen:
    """Each sample-scope computation of every sample ``coming`` touches, on its stored
    injections plus those ``coming`` adds. Reads without a transaction: what it read may be
    out of date by the time the chunk writes, which ``computed`` finds out for itself."""
    if not coming:
        return Foreseen()
    keys = sorted({c.job_key for c in coming})
    jobs: dict[str, tuple[int | None, str | None]] = {}
    for part in sql.chunks(keys):
        jobs.update((key, (id_, method)) for id_, key, method in sql.rows(
            f"SELECT id, key, method FROM {sql.table(Job)} WHERE key IN "
            f"({sql.marks(len(part))})", part))
    stored: dict[tuple[int, str, str, str], int] = {}
    job_ids = sorted({id_ for id_, _ in jobs.values() if id_ is not None})
    for part in sql.chunks(job_ids):
        stored.update(((job_id, sample_id, analyte, identity), id_)
                      for id_, job_id, sample_id, analyte, identity in sql.rows(
            f"SELECT id, job_id, sample_id, analyte, identity FROM {sql.table(Sample)} "
            f"WHERE job_id IN ({sql.marks(len(part))})", part))
    # The job's method as ingest will leave it: the stored one, else the first file's that
    # names one (``_job_for``).
    method: dict[str, str | None] = {key: found[1] for key, found in jobs.items()}
    samples: dict[tuple[str, str, str, str], Sample] = {}
    adding: dict[tuple[str, str, str, str], list[tuple[CurrentInjection, list[StoredPeak]]]]
    adding = {}
    unseen: set[tuple[str, str, str, str]] = set()
    for n, c in enumerate(coming):
        if not method.get(c.job_key) and c.parsed.method:
            method[c.job_key] = c.parsed.method
        key = (c.job_key, c.sample_id, c.analyte, c.identity)
        if key not in samples:
            job_id = jobs.get(c.job_key, (None, None))[0]
            samples[key] = Sample(id=None if job_id is None else stored.get((job_id, *key[1:])),
                                  sample_id=c.sample_id, analyte=c.analyte)
        peaks = _as_read(c.peaks)
        dilution = _float_as_read(c.parsed.dilution_factor)
        if peaks is None or dilution is False:
            unseen.add(key)  # read back otherwise than written: left to the recompute
            continue
        injection = CurrentInjection(_AHEAD + n, c.number, c.file_name, dilution)
        adding.setdefault(key, []).append((injection, peaks))
    ids = sorted({s.id for s in samples.values() if s.id is not None})
    injections: dict[int, list[CurrentInjection]] = {i: [] for i in ids}
    for part in sql.chunks(ids):
        for sample_id, *values in sql.rows(SAMPLES_INJECTIONS_SQL.format(
                sql.marks(len(part))), (*part, False)):
            injections[sample_id].append(CurrentInjection(*values))
    peaks = stored_peaks([i.id for found in injections.values() for i in found])
    peaks.update((i.id, p) for added in adding.values() for i, p in added)
    found = Foreseen()
    for key, sample in samples.items():
        if key in unseen or key not in adding:
            continue
        sample.job = Job(method=method.get(key[0]))
        mine = injections.get(sample.id, []) if sample.id is not None else []
        tables = tables_of(sample, [*mine, *(i for i, _ in adding[key])], peaks, methods)
        if not tables:
            continue
        for _, table in tables:
            found.mains[tuple(table)] = select_main_peak(table)
        analyte = sample.analyte or None
        for compute in kinds.sample_computations():
            made = list(compute(labelled(tables), sample.sample_id, analyte))
            found.results[(compute, sample.sample_id, analyte, _input(tables))] = made
            found.texts.update((id(comp), (comp, store.texts(comp))) for comp in made)
    return found


def _as_read(rows: Sequence[Sequence[Any]]) -> list[StoredPeak] | None:
    """Peak rows (signal, number, then the float columns) as ``inputs`` reads them back: an
    int as a float. None for a value the databases hand back differently (-0.0: SQLite
    returns 0.0) or not as a float at all: a computation on it might not be the one made on
    what is read back."""
    out = []
    for row in rows:
        values = list(row[2:9])
        for i, v in enumerate(values):
            if type(v) is not float or v == 0.0:
                read = _float_as_read(v)
                if read is False:
                    return None
                values[i] = read
        out.append(StoredPeak(row[0], *values))
    return out


def _float_as_read(value: object) -> float | bool | None:
    """A value of a float column as it is read back; False when that is not known."""
    if value is None:
        return None
    if type(value) is int:
        return float(value)
    if type(value) is not float or (value == 0.0 and math.copysign(1.0, value) < 0):
        return False
    return value
