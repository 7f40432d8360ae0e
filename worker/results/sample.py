"""Turning a sample's current injections into Result rows, and keeping them current.

Results follow the data: whenever a file adds or supersedes injections of a sample, its results
are computed again. A result whose value and inputs did not change stays as it is; one that did
is marked superseded and the new one inserted, so history is kept and nothing is duplicated.
``replace`` does that for any set of result kinds, per sample or (sample None) per job, and is
shared with ``worker.results.job`` (calibration, identity, quantity, acceptance).

A computation whose value is a yes/no (identity, acceptance) is stored with ``value`` None and
the outcome in ``text`` ("conforms" / "does not conform", "pass" / "fail"), so a numeric query
on ``value`` never mistakes an outcome for a measurement; the numbers behind it are in
``inputs`` and ``trace``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import TypeAdapter

from worker.chemistry import purity
from worker.chemistry.naturalsort import natural_key
from worker.chemistry.steps import Computation, Step
from worker.record import audit, sql
from worker.record.models import Injection, Peak, Result, Sample, SourceFile, utcnow
from worker.settings import MethodSettings

# Result kinds as stored (the chemistry's own kinds, renamed for the table).
PURITY_INJECTION = "purity_injection"
PURITY_KINDS = (PURITY_INJECTION, "purity", "purity_rsd")
# The words a yes/no outcome is stored as, per kind: (True, False).
OUTCOME_TEXT = {"identity": ("conforms", "does not conform"), "acceptance": ("pass", "fail")}

Wanted = tuple["CurrentInjection | None", Computation]


def purity_signal(peaks: Iterable[StoredPeak], wanted: str | None = None) -> str | None:
    """The signal purity is computed on.

    Default: the first signal (in file order) that has a peak table — exports with several
    signals (a DAD at 220 and 254 nm, FID and TCD) list their primary signal first. A method may
    name its signal (``purity_signal`` in ``[methods.NAME]``): the signal printed with that name,
    or a wavelength (``254`` / ``254 nm``) matching the signal name's ``Sig=254`` or ``254nm``.
    None when no peak table, or no signal is the one wanted.
    """
    names = list(dict.fromkeys(p.signal for p in peaks))
    if wanted is None:
        return names[0] if names else None
    target = wanted.strip()
    if target in names:
        return target
    nm = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*(?:nm)?", target, re.IGNORECASE)
    if nm:
        value = re.escape(nm[1]) + r"(?:\.0+)?"
        pattern = re.compile(rf"Sig={value}(?![0-9.])|(?<![\w=.]){value}\s*nm\b", re.IGNORECASE)
        for name in names:
            if pattern.search(name):
                return name
    return None


@dataclass(frozen=True, slots=True)
class CurrentInjection:
    """A current injection as results need it: read for every sample a file touches, so plain
    values rather than ORM objects."""

    id: int
    number: int
    file_name: str
    dilution_factor: float | None


@dataclass(frozen=True, slots=True)
class StoredPeak:
    """A stored peak as purity and calibration need it (``PeakLike``)."""

    signal: str
    rt_min: float
    area: float
    area_pct: float | None


def injection_label(injection: CurrentInjection) -> str:
    return f"Inj_{injection.number}"


def wanted_signal(sample: Sample, methods: Mapping[str, MethodSettings] | None) -> str | None:
    """The configured ``purity_signal`` for the sample: by analyte, job method, then default."""
    for key in (sample.analyte, sample.job.method, "default"):
        if methods and key and key in methods and methods[key].purity_signal:
            return methods[key].purity_signal
    return None


Tables = list[tuple[CurrentInjection, list[StoredPeak]]]

_INJECTIONS_SQL = (
    f"SELECT i.id, i.number, f.name, i.dilution_factor FROM {sql.table(Injection)} i "
    f"JOIN {sql.table(SourceFile)} f ON f.id = i.source_file_id "
    "WHERE i.sample_id = ? AND i.superseded = ?")
_PEAKS_SQL = (f"SELECT injection_id, signal, rt_min, area, area_pct FROM {sql.table(Peak)} "
              "WHERE injection_id IN ({}) ORDER BY id")


def peak_tables(sample: Sample, methods: Mapping[str, MethodSettings] | None = None,
                cache: dict[int, Tables] | None = None) -> Tables:
    """The sample's current injections that have a peak table, in natural label order, each
    with the peaks of its purity signal (``purity_signal``; configured per method).

    ``cache`` (per transaction) saves reading a sample's tables again for its job's results.
    """
    if cache is not None and sample.id in cache:
        return cache[sample.id]
    wanted = wanted_signal(sample, methods)
    injections = [CurrentInjection(*r) for r in sql.rows(_INJECTIONS_SQL, (sample.id, False))]
    by_injection: dict[int, list[StoredPeak]] = {i.id: [] for i in injections}
    if injections:
        ids = list(by_injection)
        for injection_id, *values in sql.rows(_PEAKS_SQL.format(sql.marks(len(ids))), ids):
            by_injection[injection_id].append(StoredPeak(*values))
    tables: Tables = []
    for inj in sorted(injections, key=lambda i: (natural_key(injection_label(i)), i.id)):
        peaks = by_injection[inj.id]
        signal = purity_signal(peaks, wanted)
        if signal is None:
            continue  # trace-only (chromatogram), or without the method's signal
        tables.append((inj, [p for p in peaks if p.signal == signal]))
    if cache is not None:
        cache[sample.id] = tables
    return tables


def sample_purity(sample: Sample,
                  tables: Tables) -> purity.SamplePurity | None:
    """Purity of ``sample`` from its peak tables (see ``peak_tables``); None without any."""
    if not tables:
        return None
    labelled = [purity.Injection(label=injection_label(inj), peaks=peaks)
                for inj, peaks in tables]
    return purity.sample_purity(labelled, sample=sample.sample_id,
                                analyte=sample.analyte or None)


def recompute_sample(sample: Sample, methods: Mapping[str, MethodSettings] | None = None,
                     cache: dict[int, Tables] | None = None) -> None:
    """Compute purity for ``sample`` from its current injections."""
    tables = peak_tables(sample, methods, cache)
    wanted: list[Wanted] = []
    outcome = sample_purity(sample, tables)
    if outcome is not None:
        by_label = {injection_label(inj): inj for inj, _ in tables}
        for comp in outcome.injections:
            wanted.append((by_label[comp.inputs["injection"]], comp))
        wanted += [(None, outcome.purity), (None, outcome.rsd)]
    replace(sample.job_id, sample, wanted, PURITY_KINDS)


def stored_value(comp: Computation) -> tuple[float | None, str | None]:
    """(value, text) as stored: numbers in value, yes/no outcomes as words in text."""
    if isinstance(comp.value, bool):
        yes, no = OUTCOME_TEXT.get(comp.kind, ("true", "false"))
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
            kinds: Sequence[str]) -> bool:
    """Make ``wanted`` the current results of these ``kinds`` for ``sample`` (None: the job's
    own rows). Unchanged rows are kept, changed ones superseded. Returns whether anything was
    inserted or superseded."""
    text = _CURRENT_SQL.format(kinds=sql.marks(len(kinds)),
                               sample="sample_id IS NULL" if sample is None else "sample_id = ?")
    params = [job_id, False, *kinds, *([] if sample is None else [sample.id])]
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
             "calc_version": row[11]} for row_id, row in zip(ids, fresh, strict=True)])
    if have:
        stale = sorted(have.values())
        sql.execute(f"UPDATE {sql.table(Result)} SET superseded = ? WHERE id IN "
                    f"({sql.marks(len(stale))})", [True, *(row_id for row_id, _ in stale)])
        audit.record("superseded", None, None, job=job_id, sample=who,
                     results=[{"result": row_id, "kind": kind} for row_id, kind in stale])
    return bool(fresh or have)
