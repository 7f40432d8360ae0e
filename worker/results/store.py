"""Keeping Result rows current: what a recompute wants replaces what is stored, by scope.

A result whose value and inputs did not change stays as it is; one that did is marked
superseded and the new one inserted, so history is kept and nothing is duplicated. Which rows
a recompute owns comes from the registry (``worker.results.kinds``): every kind of its scope,
so no kind can be left out of the supersede; a computation of an undeclared kind is refused.

A computation whose value is a yes/no (identity, acceptance) is stored with ``value`` None and
the outcome in ``text`` (the kind's words: "conforms" / "does not conform", "pass" / "fail"),
so a numeric query on ``value`` never mistakes an outcome for a measurement; the numbers behind
it are in ``inputs`` and ``trace``.

An ingest chunk recomputes hundreds of samples; a query and an insert each were most of its
statements, each a round trip to a database server. Inside ``batched`` the current results of
the chunk's samples are read together on the way in, and the rows, the superseding UPDATE and
the digests of what was written are made together on the way out: the same rows and the same
events, in the same order, as one ``replace`` at a time.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter

from worker.chemistry.steps import Computation, Step
from worker.record import audit, digest, jsontext, sql
from worker.record.models import Result, Sample, utcnow
from worker.results import kinds
from worker.results.inputs import CurrentInjection

Wanted = tuple[CurrentInjection | None, Computation]


def stored_value(comp: Computation) -> tuple[float | None, str | None]:
    """(value, text) as stored: numbers in value, yes/no outcomes as words in text."""
    if isinstance(comp.value, bool):
        kind = kinds.get(comp.kind)
        yes, no = kind.outcomes if kind and kind.outcomes else ("true", "false")
        return None, yes if comp.value else no
    if isinstance(comp.value, int | float):
        return float(comp.value), None
    return None, None


# Each sample (or job) is looked up by its own index: the flag is not indexed alone (migration
# 14), and ``NOT superseded`` is no index term either, should a database still have one.
_CURRENT_SQL = (f"SELECT id, job_id, sample_id, injection_id, kind, value, text, inputs, "
                f"calc_version FROM {sql.table(Result)} WHERE NOT superseded "
                "AND (sample_id IN ({samples}) OR (sample_id IS NULL AND job_id IN ({jobs}))) "
                "ORDER BY id")
# The trace straight to JSON text in pydantic's core: dumping each step to a dict and then
# encoding that was the dearest part of writing a result.
_STEPS = TypeAdapter(list[Step])
_INPUTS = jsontext.encoder(sort_keys=True, default=str)
_FLAGS = jsontext.encoder()  # json.dumps's own text
_RESULT_COLUMNS = ("job_id", "sample_id", "injection_id", "analyte", "kind", "value", "text",
                   "unit", "inputs", "trace", "flags", "calc_version", "computed_at",
                   "superseded")

Key = tuple[int, "int | None"]  # (job id, sample id): None for the job's own rows
Current = tuple[Any, ...]  # id, injection_id, kind, value, text, inputs, calc_version


@dataclass
class _Batch:
    """The current results read so far, and what the recomputes inside want written."""

    current: dict[Key, list[Current]] = field(default_factory=dict)
    written: dict[Key, set[str]] = field(default_factory=dict)  # kinds changed, not yet flushed
    fresh: list[tuple[object, ...]] = field(default_factory=list)
    computed: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # rows, details
    stale: list[int] = field(default_factory=list)

    def load(self, keys: Iterable[Key]) -> None:
        """The current rows of the keys not read yet, in one query per ``sql.CHUNK``."""
        missing = sorted({k for k in keys if k not in self.current},
                         key=lambda k: (k[0], k[1] is not None, k[1] or 0))
        for part in sql.chunks(missing):
            samples = [s for _, s in part if s is not None]
            jobs = [j for j, s in part if s is None]
            for k in part:
                self.current[k] = []
            text = _CURRENT_SQL.format(samples=sql.marks(len(samples)) or "NULL",
                                       jobs=sql.marks(len(jobs)) or "NULL")
            for row in sql.rows(text, [*samples, *jobs]):
                found = self.current.get((row[1], row[2]))
                if found is not None:
                    found.append((row[0], *row[3:]))

    def flush(self) -> None:
        """The rows wanted so far, their events' ids and digests, and the superseding UPDATE."""
        if self.fresh:
            ids = sql.insert(Result, _RESULT_COLUMNS, self.fresh, returning=True)
            written = [(row_id, *row[:-1])  # all but ``superseded``, as digested
                       for row_id, row in zip(ids, self.fresh, strict=True)]
            groups: list[list[tuple[object, ...]]] = []
            for n, details in self.computed:
                mine, written = written[:n], written[n:]
                groups.append(mine)
                for entry, row in zip(details["results"], mine, strict=True):
                    entry["result"] = row[0]
            for (_, details), rows in zip(self.computed, digest.results_written(groups),
                                          strict=True):
                details["rows"] = rows
        for part in sql.chunks(self.stale):
            sql.execute(f"UPDATE {sql.table(Result)} SET superseded = ? WHERE id IN "
                        f"({sql.marks(len(part))})", [True, *part])
        for key in self.written:  # read afresh if asked again: they have ids now
            self.current.pop(key, None)
        self.written.clear()
        self.fresh, self.computed, self.stale = [], [], []


_batch = threading.local()


def _keys(samples: Iterable[Sample]) -> set[Key]:
    """Each sample's own rows' key, and its job's."""
    return {k for s in samples for k in ((s.job_id, s.id), (s.job_id, None))}


@contextlib.contextmanager
def batched(samples: Iterable[Sample] = ()) -> Iterator[None]:
    """Inside, ``replace`` reads the current results of ``samples`` (and their jobs) from one
    query made on the way in, and writes what it wants on the way out (in the caller's
    transaction), its events held in their places until then. Nothing else may write results
    inside; on an exception nothing is written (the transaction is rolling back)."""
    if getattr(_batch, "current", None) is not None:  # already batched further out
        preload(samples)
        yield
        return
    with audit.held():  # the events wait for the ids and digests the flush gives them
        batch = _batch.current = _Batch()
        try:
            batch.load(_keys(samples))
            yield
        finally:
            _batch.current = None
        batch.flush()


def preload(samples: Iterable[Sample]) -> None:
    """Read the current results of ``samples`` now, together, if inside ``batched``: a
    recompute that reaches the rest of a job asks for them one by one."""
    batch: _Batch | None = getattr(_batch, "current", None)
    if batch is not None:
        batch.load(_keys(samples))


def replace(job_id: int, sample: Sample | None, wanted: Sequence[Wanted],
            scope: kinds.Scope) -> bool:
    """Make ``wanted`` the current results of ``scope`` for ``sample`` (None: the job's own
    rows). Unchanged rows are kept, changed ones superseded. Returns whether anything was
    inserted or superseded."""
    batch: _Batch | None = getattr(_batch, "current", None)
    if batch is None:
        with batched():
            return replace(job_id, sample, wanted, scope)
    owned = kinds.select(scope, job_row=sample is None)
    for injection, comp in wanted:
        kind = owned.get(comp.kind)
        if kind is None or (kind.row == "injection") != (injection is not None):
            raise ValueError(
                f"result kind {comp.kind!r} (scope {scope}, "
                f"{'injection' if injection else 'job' if sample is None else 'sample'} row) "
                "is not declared so in worker/results/kinds.py")
    key: Key = (job_id, sample.id if sample is not None else None)
    if not batch.written.get(key, set()).isdisjoint(owned):
        batch.flush()  # what it wrote of these kinds before must be read back with its ids
    if key not in batch.current:
        batch.load([key])
    # A signature is everything that makes a result what it is; same signature, same result.
    have = {tuple(r[1:]): (r[0], r[2]) for r in batch.current[key] if r[2] in owned}
    who = sample.sample_id if sample is not None else None
    fresh: list[tuple[object, ...]] = []
    now = utcnow()
    for injection, comp in wanted:
        inputs = _INPUTS(comp.inputs)
        value, outcome = stored_value(comp)
        injection_id = injection.id if injection else None
        if have.pop((injection_id, comp.kind, value, outcome, inputs, comp.calc_version),
                    None) is not None:
            continue
        analyte = comp.inputs.get("analyte") or (sample.analyte if sample is not None else "")
        fresh.append((job_id, sample.id if sample is not None else None, injection_id,
                      analyte or "", comp.kind, value, outcome, comp.unit, inputs,
                      _STEPS.dump_json(comp.steps).decode(),
                      _FLAGS(comp.flags), comp.calc_version, now, False))
    if fresh:
        # One event per recompute, naming every result it wrote or retired, rather than one
        # each: the trail stays complete and a burst does not spend its time hashing audit rows.
        # Held in its place; the flush fills in the ids and the digest of the rows.
        details: dict[str, Any] = {"job": job_id, "sample": who, "results": [
            {"result": None, "kind": row[4], "value": row[5], "text": row[6],
             "calc_version": row[11]} for row in fresh], "rows": None}
        audit.record_many([("computed", None, None, details)])
        batch.computed.append((len(fresh), details))
        batch.fresh += fresh
    if have:
        stale = sorted(have.values())
        batch.stale += [row_id for row_id, _ in stale]
        audit.record("superseded", None, None, job=job_id, sample=who,
                     results=[{"result": row_id, "kind": kind} for row_id, kind in stale])
    if fresh or have:
        batch.written.setdefault(key, set()).update(owned)
    return bool(fresh or have)
