"""What the result computations read: a sample's current injections, each with the peaks of its
purity signal, and their main peaks.

Read for every sample a file touches (and, for a job's results, every standard of the job), so
in plain SQL into plain values rather than ORM objects, and cached per transaction.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from worker.chemistry import purity
from worker.chemistry.naturalsort import natural_key
from worker.record import sql
from worker.record.models import Injection, Peak, Sample, SourceFile
from worker.settings import MethodSettings


# Named tuples rather than frozen dataclasses: a chunk's recompute reads thousands of injections
# and peaks back, and a frozen dataclass's __init__ costs several times a tuple's.
class CurrentInjection(NamedTuple):
    """A current (not superseded) injection of a sample."""

    id: int
    number: int
    file_name: str
    dilution_factor: float | None


class StoredPeak(NamedTuple):
    """A stored peak (``PeakLike`` for purity and calibration); the shape columns are there
    for computations on peak shape (tailing, resolution)."""

    signal: str
    rt_min: float
    area: float
    area_pct: float | None
    height: float | None
    begin_min: float | None
    end_min: float | None
    width_min: float | None


Tables = list[tuple[CurrentInjection, list[StoredPeak]]]


class MainPeakRow(NamedTuple):
    """One current injection's main peak, labelled by its source file (unique, readable)."""

    injection: CurrentInjection
    label: str
    area: float
    rt_min: float


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


def injection_label(injection: CurrentInjection) -> str:
    return f"Inj_{injection.number}"


def wanted_signal(sample: Sample, methods: Mapping[str, MethodSettings] | None) -> str | None:
    """The configured ``purity_signal`` for the sample: by analyte, job method, then default."""
    for key in (sample.analyte, sample.job.method, "default"):
        if methods and key and key in methods and methods[key].purity_signal:
            return methods[key].purity_signal
    return None


_INJECTIONS_SQL = (
    f"SELECT i.id, i.number, f.name, i.dilution_factor FROM {sql.table(Injection)} i "
    f"JOIN {sql.table(SourceFile)} f ON f.id = i.source_file_id "
    "WHERE i.sample_id = ? AND i.superseded = ?")
_PEAKS_SQL = (f"SELECT injection_id, signal, rt_min, area, area_pct, height, begin_min, "
              f"end_min, width_min FROM {sql.table(Peak)} WHERE injection_id IN ({{}}) "
              "ORDER BY id")


_SAMPLES_INJECTIONS_SQL = (
    f"SELECT i.sample_id, i.id, i.number, f.name, i.dilution_factor FROM {sql.table(Injection)} i "
    f"JOIN {sql.table(SourceFile)} f ON f.id = i.source_file_id "
    "WHERE i.sample_id IN ({}) AND i.superseded = ?")


def peak_tables(sample: Sample, methods: Mapping[str, MethodSettings] | None = None,
                cache: dict[int, Tables] | None = None) -> Tables:
    """The sample's current injections that have a peak table, in natural label order, each
    with the peaks of its purity signal (``purity_signal``; configured per method).

    ``cache`` (per transaction) saves reading a sample's tables again for its job's results.
    """
    if cache is not None and sample.id in cache:
        return cache[sample.id]
    injections = [CurrentInjection(*r) for r in sql.rows(_INJECTIONS_SQL, (sample.id, False))]
    tables = _tables(sample, injections, _peaks([i.id for i in injections]), methods)
    if cache is not None:
        cache[sample.id] = tables
    return tables


def read_tables(samples: Iterable[Sample], methods: Mapping[str, MethodSettings] | None,
                cache: dict[int, Tables],
                written: Mapping[int, list[StoredPeak]] | None = None) -> None:
    """``peak_tables`` of many samples into ``cache`` with a query or two for them all, not
    two each: a chunk of files recomputes every sample it touched (each a round trip to a
    database server). ``written``: the peaks of injections this transaction inserted, by
    injection id, as they read back (``stored_peaks``); those are not read again."""
    todo = {s.id: s for s in samples if s.id not in cache}
    ids = list(todo)
    injections: dict[int, list[CurrentInjection]] = {i: [] for i in ids}
    for chunk in sql.chunks(ids):
        for sample_id, *values in sql.rows(_SAMPLES_INJECTIONS_SQL.format(
                sql.marks(len(chunk))), (*chunk, False)):
            injections[sample_id].append(CurrentInjection(*values))
    known = written or {}
    peaks = _peaks([i.id for found in injections.values() for i in found if i.id not in known])
    peaks.update((i.id, known[i.id]) for found in injections.values() for i in found
                 if i.id in known)
    for sample_id, sample in todo.items():
        cache[sample_id] = _tables(sample, injections[sample_id], peaks, methods)


def stored_peaks(peaks: Iterable[Sequence[object]]) -> list[StoredPeak] | None:
    """Peak rows as they are bound (signal, number, rt_min … width_min, peak_type, name) as
    the database hands them back: an int in a float column comes back a float. None when a
    value might come back otherwise (-0.0, which SQLite returns as 0.0; a number that is not
    finite; an unexpected type): that injection's peaks are then read back."""
    found = []
    for signal, _number, *numbers, _type, _name in peaks:
        if type(signal) is not str:
            return None
        values: list[float | None] = []
        for value in numbers:
            if value is not None:
                if type(value) is int and abs(value) <= _EXACT:
                    value = float(value)
                if type(value) is not float or value - value != 0.0 or (
                        value == 0.0 and math.copysign(1.0, value) < 0):
                    return None
            values.append(value)
        found.append(StoredPeak(signal, *values))  # type: ignore[arg-type]
    return found


_EXACT = 2 ** 53  # ints a float holds exactly


def _peaks(injection_ids: list[int]) -> dict[int, list[StoredPeak]]:
    """The peaks of these injections, by injection, in the order they were written."""
    found: dict[int, list[StoredPeak]] = {i: [] for i in injection_ids}
    for chunk in sql.chunks(injection_ids):
        for injection_id, *values in sql.rows(_PEAKS_SQL.format(sql.marks(len(chunk))), chunk):
            found[injection_id].append(StoredPeak(*values))
    return found


def _tables(sample: Sample, injections: list[CurrentInjection],
            by_injection: dict[int, list[StoredPeak]],
            methods: Mapping[str, MethodSettings] | None) -> Tables:
    wanted = wanted_signal(sample, methods)
    tables: Tables = []
    for inj in sorted(injections, key=lambda i: (natural_key(injection_label(i)), i.id)):
        peaks = by_injection[inj.id]
        signal = purity_signal(peaks, wanted)
        if signal is None:
            continue  # trace-only (chromatogram), or without the method's signal
        tables.append((inj, [p for p in peaks if p.signal == signal]))
    return tables


def labelled(tables: Tables) -> list[purity.Injection]:
    """The tables as the chemistry takes them: ``Inj_N`` labels, natural order kept."""
    return [purity.Injection(label=injection_label(inj), peaks=peaks) for inj, peaks in tables]


def main_peaks(sample: Sample, methods: Mapping[str, MethodSettings],
               cache: dict[int, Tables] | None = None) -> list[MainPeakRow]:
    """Main peak of each current injection with a peak table (on the purity signal, as
    configured), in natural injection order."""
    rows = []
    for inj, peaks in peak_tables(sample, methods, cache):
        main = purity.select_main_peak(peaks)
        if main is not None:
            rows.append(MainPeakRow(inj, inj.file_name, main.area, main.rt_min))
    return rows
