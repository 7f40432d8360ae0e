"""Keeping Result rows current: what a recompute wants replaces what is stored, by scope.

A result whose value and inputs did not change stays as it is; one that did is marked
superseded and the new one inserted, so history is kept and nothing is duplicated. Which rows
a recompute owns comes from the registry (``worker.results.kinds``): every kind of its scope,
so no kind can be left out of the supersede; a computation of an undeclared kind is refused.

A computation whose value is a yes/no (identity, acceptance) is stored with ``value`` None and
the outcome in ``text`` (the kind's words: "conforms" / "does not conform", "pass" / "fail"),
so a numeric query on ``value`` never mistakes an outcome for a measurement; the numbers behind
it are in ``inputs`` and ``trace``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import TypeAdapter

from worker.chemistry.steps import Computation, Step
from worker.record import audit, digest, sql
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


_CURRENT_SQL = (f"SELECT id, injection_id, kind, value, text, inputs, calc_version "
                f"FROM {sql.table(Result)} WHERE job_id = ? AND superseded = ? "
                "AND kind IN ({kinds}) AND {sample}")
# The trace straight to JSON text in pydantic's core: dumping each step to a dict and then
# encoding that was the dearest part of writing a result.
_STEPS = TypeAdapter(list[Step])
_INPUTS = json.JSONEncoder(sort_keys=True, default=str)  # json.dumps would build one per call
_RESULT_COLUMNS = ("job_id", "sample_id", "injection_id", "analyte", "kind", "value", "text",
                   "unit", "inputs", "trace", "flags", "calc_version", "computed_at",
                   "superseded")


def replace(job_id: int, sample: Sample | None, wanted: Sequence[Wanted],
            scope: kinds.Scope) -> bool:
    """Make ``wanted`` the current results of ``scope`` for ``sample`` (None: the job's own
    rows). Unchanged rows are kept, changed ones superseded. Returns whether anything was
    inserted or superseded."""
    owned = kinds.select(scope, job_row=sample is None)
    for injection, comp in wanted:
        kind = owned.get(comp.kind)
        if kind is None or (kind.row == "injection") != (injection is not None):
            raise ValueError(
                f"result kind {comp.kind!r} (scope {scope}, "
                f"{'injection' if injection else 'job' if sample is None else 'sample'} row) "
                "is not declared so in worker/results/kinds.py")
    text = _CURRENT_SQL.format(kinds=sql.marks(len(owned)),
                               sample="sample_id IS NULL" if sample is None else "sample_id = ?")
    params = [job_id, False, *owned, *([] if sample is None else [sample.id])]
    # A signature is everything that makes a result what it is; same signature, same result.
    have = {tuple(r[1:]): (r[0], r[2]) for r in sql.rows(text, params)}
    who = sample.sample_id if sample is not None else None
    fresh: list[tuple[object, ...]] = []
    now = utcnow()
    for injection, comp in wanted:
        inputs = _INPUTS.encode(comp.inputs)
        value, outcome = stored_value(comp)
        injection_id = injection.id if injection else None
        if have.pop((injection_id, comp.kind, value, outcome, inputs, comp.calc_version),
                    None) is not None:
            continue
        analyte = comp.inputs.get("analyte") or (sample.analyte if sample is not None else "")
        fresh.append((job_id, sample.id if sample is not None else None, injection_id,
                      analyte or "", comp.kind, value, outcome, comp.unit, inputs,
                      _STEPS.dump_json(comp.steps).decode(),
                      json.dumps(comp.flags), comp.calc_version, now, False))
    if fresh:  # one statement for all of them: a recompute is on every file's path
        ids = sql.insert(Result, _RESULT_COLUMNS, fresh, returning=True)
        # One event per recompute, naming every result it wrote or retired, rather than one
        # each: the trail stays complete and a burst does not spend its time hashing audit rows.
        audit.record("computed", None, None, job=job_id, sample=who, results=[
            {"result": row_id, "kind": row[4], "value": row[5], "text": row[6],
             "calc_version": row[11]} for row_id, row in zip(ids, fresh, strict=True)],
            rows=digest.result_rows(ids))
    if have:
        stale = sorted(have.values())
        sql.execute(f"UPDATE {sql.table(Result)} SET superseded = ? WHERE id IN "
                    f"({sql.marks(len(stale))})", [True, *(row_id for row_id, _ in stale)])
        audit.record("superseded", None, None, job=job_id, sample=who,
                     results=[{"result": row_id, "kind": kind} for row_id, kind in stale])
    return bool(fresh or have)
