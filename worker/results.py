"""Turning a sample's current injections into Result rows, and keeping them current.

Results follow the data: whenever a file adds or supersedes injections of a sample, its results
are computed again. A result whose value and inputs did not change stays as it is; one that did
is marked superseded and the new one inserted, so history is kept and nothing is duplicated.
``replace`` does that for any set of result kinds, per sample or (sample None) per job, and is
shared with ``worker.jobresults`` (calibration, identity, quantity, acceptance).

A computation whose value is a yes/no (identity, acceptance) is stored with ``value`` None and
the outcome in ``text`` ("conforms" / "does not conform", "pass" / "fail"), so a numeric query
on ``value`` never mistakes an outcome for a measurement; the numbers behind it are in
``inputs`` and ``trace``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence

from worker import audit
from worker.chemistry import purity
from worker.chemistry.naturalsort import natural_key
from worker.chemistry.trace import Computation
from worker.models import Injection, Peak, Result, Sample, SourceFile, utcnow
from worker.settings import MethodSettings

# Result kinds as stored (the chemistry's own kinds, renamed for the table).
PURITY_INJECTION = "purity_injection"
PURITY_KINDS = (PURITY_INJECTION, "purity", "purity_rsd")
# The words a yes/no outcome is stored as, per kind: (True, False).
OUTCOME_TEXT = {"identity": ("conforms", "does not conform"), "acceptance": ("pass", "fail")}

Wanted = tuple[Injection | None, Computation]


def purity_signal(peaks: Iterable[Peak], wanted: str | None = None) -> str | None:
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


def injection_label(injection: Injection) -> str:
    return f"Inj_{injection.number}"


def wanted_signal(sample: Sample, methods: Mapping[str, MethodSettings] | None) -> str | None:
    """The configured ``purity_signal`` for the sample: by analyte, job method, then default."""
    for key in (sample.analyte, sample.job.method, "default"):
        if methods and key and key in methods and methods[key].purity_signal:
            return methods[key].purity_signal
    return None


Tables = list[tuple[Injection, list[Peak]]]


def peak_tables(sample: Sample, methods: Mapping[str, MethodSettings] | None = None,
                cache: dict[int, Tables] | None = None) -> Tables:
    """The sample's current injections that have a peak table, in natural label order, each
    with the peaks of its purity signal (``purity_signal``; configured per method).

    ``cache`` (per transaction) saves reading a sample's tables again for its job's results.
    """
    if cache is not None and sample.id in cache:
        return cache[sample.id]
    wanted = wanted_signal(sample, methods)
    injections = list(Injection.select(Injection, SourceFile).join(SourceFile)
                      .where(Injection.sample == sample.id,
                             Injection.superseded == False))  # noqa: E712
    by_injection: dict[int, list[Peak]] = {i.id: [] for i in injections}
    if injections:
        for peak in Peak.select().where(Peak.injection.in_(list(by_injection))).order_by(Peak.id):
            by_injection[peak.injection_id].append(peak)
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
                  tables: Sequence[tuple[Injection, list[Peak]]]) -> purity.SamplePurity | None:
    """Purity of ``sample`` from its peak tables (see ``peak_tables``); None without any."""
    if not tables:
        return None
    labelled = [purity.Injection(label=injection_label(inj), peaks=peaks)
                for inj, peaks in tables]
    return purity.sample_purity(labelled, sample=sample.sample_id,
                                analyte=sample.analyte or None)


def recompute_sample(sample: Sample, methods: Mapping[str, MethodSettings] | None = None,
                     cache: dict[int, Tables] | None = None) -> list[Result]:
    """Compute purity for ``sample`` from its current injections; returns the rows now current."""
    tables = peak_tables(sample, methods, cache)
    wanted: list[Wanted] = []
    outcome = sample_purity(sample, tables)
    if outcome is not None:
        by_label = {injection_label(inj): inj for inj, _ in tables}
        for comp in outcome.injections:
            wanted.append((by_label[comp.inputs["injection"]], comp))
        wanted += [(None, outcome.purity), (None, outcome.rsd)]
    rows, _ = replace(sample.job_id, sample, wanted, PURITY_KINDS)
    return rows


def stored_value(comp: Computation) -> tuple[float | None, str | None]:
    """(value, text) as stored: numbers in value, yes/no outcomes as words in text."""
    if isinstance(comp.value, bool):
        yes, no = OUTCOME_TEXT.get(comp.kind, ("true", "false"))
        return None, yes if comp.value else no
    if isinstance(comp.value, int | float):
        return float(comp.value), None
    return None, None


def _signature(injection_id: int | None, kind: str, value: float | None, text: str | None,
               inputs: str, calc_version: str) -> tuple:
    return injection_id, kind, value, text, inputs, calc_version


def replace(job_id: int, sample: Sample | None, wanted: Sequence[Wanted],
            kinds: Sequence[str]) -> tuple[list[Result], bool]:
    """Make ``wanted`` the current results of these ``kinds`` for ``sample`` (None: the job's
    own rows). Unchanged rows are kept, changed ones superseded. Returns the current rows and
    whether anything was inserted or superseded."""
    query = Result.select().where(Result.job == job_id, Result.kind.in_(list(kinds)),
                                  Result.superseded == False)  # noqa: E712
    query = query.where(Result.sample.is_null() if sample is None else Result.sample == sample)
    have = {_signature(r.injection_id, r.kind, r.value, r.text, r.inputs, r.calc_version): r
            for r in query}
    who = sample.sample_id if sample is not None else None
    keep: list[Result] = []
    fresh: list[dict[str, object]] = []
    for injection, comp in wanted:
        inputs = json.dumps(comp.inputs, sort_keys=True, default=str)
        value, text = stored_value(comp)
        sig = _signature(injection.id if injection else None, comp.kind, value, text, inputs,
                         comp.calc_version)
        if sig in have:
            keep.append(have.pop(sig))
            continue
        analyte = comp.inputs.get("analyte") or (sample.analyte if sample is not None else "")
        fresh.append({
            "job": job_id, "sample": sample.id if sample is not None else None,
            "injection": injection.id if injection else None, "analyte": analyte or "",
            "kind": comp.kind, "value": value, "text": text, "unit": comp.unit, "inputs": inputs,
            "trace": json.dumps([s.model_dump(mode="json") for s in comp.steps]),
            "flags": json.dumps(comp.flags), "calc_version": comp.calc_version,
            "computed_at": utcnow()})
    created: list[dict[str, object]] = []
    if fresh:  # one statement for all of them: a recompute is on every file's path
        ids = [r.id for r in Result.insert_many(fresh).returning(Result.id).execute()]
        for row_id, values in zip(ids, fresh, strict=True):
            keep.append(Result(id=row_id, **values))
            created.append({"result": row_id, "kind": values["kind"], "value": values["value"],
                            "text": values["text"], "calc_version": values["calc_version"]})
    # One event per recompute, naming every result it wrote or retired, rather than one each:
    # the trail stays complete and a burst does not spend its time hashing audit rows.
    if created:
        audit.record("computed", None, None, job=job_id, sample=who, results=created)
    if have:
        stale = list(have.values())
        Result.update(superseded=True).where(Result.id.in_([r.id for r in stale])).execute()
        audit.record("superseded", None, None, job=job_id, sample=who,
                     results=[{"result": r.id, "kind": r.kind} for r in stale])
    return keep, bool(created or have)
