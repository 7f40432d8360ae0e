"""Digests of the rows a file produced and of the results a recompute wrote.

The audit chain proves its events were not changed; these digests, carried in the events, prove
the rows were not either. The ``ingested`` event carries ``rows``: the digest of the file's
injection, peaks and chromatograms as committed in that transaction; every ``computed`` event
(a recompute, also a later one when a standard arrives) carries ``rows``: the digest of the
result rows it wrote. ``audit verify --rows`` reads the rows again and compares.

Canonical serialization, version 1 (README "For QA" describes it too). Each row is one line,
the compact JSON array ``[table, column values…]`` in the column order of ``COLUMNS``, rows
ordered by table (injection, peak, chromatogram) then id, lines ending in ``\\n``; the digest
is the SHA-256 of the UTF-8 lines, in hex. Values are as the database returns them: numbers
as JSON numbers (floats by their shortest exact repr), text as JSON strings, NULL as null,
times as ISO-8601 text, and a blob (a trace's points) as ``"sha256:<hex of its bytes>"``.
Only columns that never change are covered: ``superseded`` marks history and is left out.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from peewee import (
    BlobField,
    DateTimeField,
    FloatField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

from worker.record import jsontext, sql
from worker.record.models import AuditEvent, Chromatogram, Injection, Peak, Result, SourceFile

COLUMNS: dict[type[Model], tuple[str, ...]] = {
    Injection: ("id", "sample_id", "source_file_id", "number", "acquired_at", "dilution_factor"),
    Peak: ("id", "injection_id", "signal", "number", "rt_min", "area", "area_pct", "height",
           "begin_min", "end_min", "width_min", "peak_type", "name"),
    Chromatogram: ("id", "injection_id", "signal", "detector", "wavelength_nm", "points",
                   "time_unit", "value_unit", "t_start", "t_end", "data"),
    Result: ("id", "job_id", "sample_id", "injection_id", "analyte", "kind", "value", "text",
             "unit", "inputs", "trace", "flags", "calc_version", "computed_at"),
}
_ENCODER = jsontext.encoder(separators=(",", ":"), ensure_ascii=False)
# The columns that may hold a blob or a time, by the table name in the lines; the others are
# JSON as the database returns them. Converting only these halves a file's digest's cost, and
# it runs for every file ingested.
SPECIAL: dict[str, tuple[int, ...]] = {
    model._meta.table_name: tuple(i for i, c in enumerate(columns)  # type: ignore[attr-defined]
                                  if c in ("acquired_at", "computed_at", "data"))
    for model, columns in COLUMNS.items()}


def _cell(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return "sha256:" + hashlib.sha256(value).hexdigest()
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return value


def line(table: str, row: Sequence[Any]) -> bytes:
    """One row's canonical line."""
    return (_ENCODER([table, *map(_cell, row)]) + "\n").encode("utf-8")


def _select(model: type[Model], where: str) -> str:
    return (f"SELECT {', '.join(COLUMNS[model])} FROM {sql.table(model)} WHERE {where} "
            "ORDER BY id")


_INJECTIONS = _select(Injection, "source_file_id = ?")
_PEAKS = _select(Peak, "injection_id IN (SELECT id FROM \"injection\" WHERE source_file_id = ?)")
_TRACES = _select(Chromatogram,
                  "injection_id IN (SELECT id FROM \"injection\" WHERE source_file_id = ?)")


def _feed(h: Any, table: str, rows: Iterable[Sequence[Any]]) -> None:
    """Each row's canonical line into ``h`` (the same bytes as ``line``)."""
    special = SPECIAL[table]
    for row in rows:
        cells: list[Any] = [table, *row]
        for i in special:
            cells[i + 1] = _cell(cells[i + 1])
        h.update((_ENCODER(cells) + "\n").encode("utf-8"))


def file_rows(file_id: int) -> str:
    """The digest of every injection, peak and chromatogram row of ledger row ``file_id``."""
    h = hashlib.sha256()
    _feed(h, "injection", sql.rows(_INJECTIONS, (file_id,)))
    _feed(h, "peak", sql.rows(_PEAKS, (file_id,)))
    # A cursor, not a list: traces are the big rows (SQLite hands them over one at a time).
    _feed(h, "chromatogram", sql.execute(_TRACES, (file_id,)))
    return h.hexdigest()


def _of_files(model: type[Model], marks: str) -> str:
    """``_select`` for many files at once, each row led by its file's id."""
    if model is Injection:
        columns, source = ", ".join(f"i.{c}" for c in COLUMNS[model]), f"{sql.table(model)} i"
    else:  # a peak or a trace, by its injection
        columns = ", ".join(f"r.{c}" for c in COLUMNS[model])
        source = f"{sql.table(model)} r JOIN {sql.table(Injection)} i ON i.id = r.injection_id"
    order = "i.id" if model is Injection else "r.id"
    return (f"SELECT i.source_file_id, {columns} FROM {source} "
            f"WHERE i.source_file_id IN ({marks}) ORDER BY {order}")


def _feed_each(hashes: dict[int, Any], table: str, rows: Iterable[Sequence[Any]]) -> None:
    """``_feed``, each row (led by its file's id) into its file's hash."""
    special = SPECIAL[table]
    for file_id, *row in rows:
        cells: list[Any] = [table, *row]
        for i in special:
            cells[i + 1] = _cell(cells[i + 1])
        hashes[file_id].update((_ENCODER(cells) + "\n").encode("utf-8"))


def files_rows(file_ids: Sequence[int]) -> dict[int, str]:
    """``file_rows`` of many files, in three queries per ``sql.CHUNK`` of them rather than
    three each: an ingest chunk digests every file it wrote (each query a round trip to a
    database server). The same digests, line for line."""
    found: dict[int, str] = {}
    wanted = sorted(set(file_ids))
    for part in sql.chunks(wanted):
        marks = sql.marks(len(part))
        hashes = {file_id: hashlib.sha256() for file_id in part}
        _feed_each(hashes, "injection", sql.rows(_of_files(Injection, marks), part))
        _feed_each(hashes, "peak", sql.rows(_of_files(Peak, marks), part))
        _feed_each(hashes, "chromatogram",
                   sql.execute(_of_files(Chromatogram, marks), part))
        found.update((file_id, h.hexdigest()) for file_id, h in hashes.items())
    return found


def _column_kinds(model: type[Model]) -> tuple[tuple[type, ...], ...]:
    """For each column of ``COLUMNS[model]``, the Python types it is read back as."""
    kinds = []
    for name in COLUMNS[model]:
        meta = model._meta  # type: ignore[attr-defined]
        field = meta.columns.get(name) or meta.fields[name]
        types: tuple[type, ...] = (
            (float,) if isinstance(field, FloatField)
            else (datetime,) if isinstance(field, DateTimeField)
            else (bytes, bytearray, memoryview) if isinstance(field, BlobField)
            else (int,) if isinstance(field, IntegerField | ForeignKeyField)  # ids too
            else (str,) if isinstance(field, TextField) or hasattr(field, "max_length")
            else ())
        kinds.append(types + ((type(None),) if field.null else ()))
    return tuple(kinds)


# What a column of each digested table holds as read back, for ``tail`` and ``file_written``:
# a Python value of another type would come back converted by the database, so its digest is
# read back.
_KINDS: dict[str, tuple[tuple[type, ...], ...]] = {
    model._meta.table_name: _column_kinds(model) for model in COLUMNS}  # type: ignore[attr-defined]


def _as_stored(kinds: Sequence[tuple[type, ...]], row: Sequence[Any]) -> list[Any] | None:
    """``row`` as the database hands it back: an int bound to a float column comes back a
    float (SQLite's REAL affinity, PostgreSQL's float8); None when a value has a type that
    the database would convert some other way (the caller then reads the rows back)."""
    out = list(row)
    for i, (value, types) in enumerate(zip(out, kinds, strict=True)):
        if type(value) is bool:
            return None
        if types and types[0] is float and type(value) is int:
            out[i] = float(value)
        elif not isinstance(value, types) or (isinstance(value, datetime)
                                              and value.tzinfo is not None):
            return None
        elif value == 0.0 and type(value) is float and math.copysign(1.0, value) < 0:
            return None  # -0.0: SQLite hands it back as 0.0, PostgreSQL as -0.0
    return out


# A peak or a chromatogram row: its id and its injection's id lead, then what the file said.
LEAD = 2


def tail(table: str, values: Sequence[Any]) -> bytes | None:
    """The end of a row's canonical line after its id and its injection's id (``LEAD``),
    made from the values to be bound, before their ids exist: before the write lock, so that
    under it a line is two numbers and these bytes. None when a value is not of its
    column's type (``_as_stored``): that file's rows are then read back."""
    types = tuple(map(type, values))
    plain = _PLAIN.get((table, types))
    if plain is None:
        plain = _PLAIN[(table, types)] = all(
            t in kinds for t, kinds in zip(types, _KINDS[table][LEAD:], strict=True)) and not (
            {i - LEAD for i in SPECIAL[table] if i >= LEAD})
    if plain and 0.0 not in values:  # each value bound is what is read back (-0.0 is not)
        return (_ENCODER(values)[1:] + "\n").encode("utf-8")  # a tuple as a list
    stored = _as_stored(_KINDS[table][LEAD:], values)
    if stored is None:
        return None
    for i in SPECIAL[table]:
        if i >= LEAD:
            stored[i - LEAD] = _cell(stored[i - LEAD])
    return (_ENCODER(stored)[1:] + "\n").encode("utf-8")


# (table, the types of a row's values after LEAD) -> whether such a row is read back as bound,
# with no time or blob to convert: most rows are, and are then encoded as they are.
_PLAIN: dict[tuple[str, tuple[type, ...]], bool] = {}


def file_written(injection: Sequence[Any], peaks: Iterable[tuple[int, int, bytes]],
                 traces: Iterable[tuple[int, int, bytes]]) -> str | None:
    """``file_rows`` of a file whose injection, peaks and chromatograms were just inserted,
    from the values bound rather than read back (under the write lock): the injection's
    row in ``COLUMNS`` order, and each peak's and trace's (id, injection id, ``tail``).
    None when a value of the injection is not of its column's type."""
    stored = _as_stored(_KINDS["injection"], injection)
    if stored is None:
        return None
    h = hashlib.sha256()
    _feed(h, "injection", [stored])
    for table, rows in ((b"peak", peaks), (b"chromatogram", traces)):
        for row_id, injection_id, end in sorted(rows):
            h.update(b'["%s",%d,%d,%s' % (table, row_id, injection_id, end))
    return h.hexdigest()


def result_rows(ids: Sequence[int]) -> str:
    """The digest of the result rows ``ids`` (in id order); a missing row changes it."""
    return results_rows([ids])[0]


def results_rows(groups: Sequence[Sequence[int]]) -> list[str]:
    """``result_rows`` of each group of ids, read in one query per ``sql.CHUNK`` ids of them
    all (a query per group was a round trip each to a database server)."""
    wanted = sorted({row_id for ids in groups for row_id in ids})
    found: dict[int, tuple[Any, ...]] = {}
    for part in sql.chunks(wanted):
        found.update((r[0], r) for r in sql.rows(
            _select(Result, f"id IN ({sql.marks(len(part))})"), part))
    digests = []
    for ids in groups:
        h = hashlib.sha256()
        for row_id in sorted(ids):
            row = found.get(row_id)
            if row is None:
                h.update(line("missing", [row_id]))
            else:
                _feed(h, "result", [row])
        digests.append(h.hexdigest())
    return digests


def results_written(groups: Sequence[Sequence[Sequence[Any]]]) -> list[str]:
    """``results_rows`` of rows just inserted, from the values written rather than read back:
    the same lines, since each column holds exactly what was bound (a float as a double, a
    time as its ISO text), and a read per chunk was the last query of its recompute, under
    the write lock. Each row in ``COLUMNS[Result]`` order, its id first."""
    digests = []
    for rows in groups:
        h = hashlib.sha256()
        _feed(h, "result", sorted(rows, key=lambda r: r[0]))
        digests.append(h.hexdigest())
    return digests


@dataclass
class RowsReport:
    files: int = 0  # ingested events whose rows were checked
    computes: int = 0  # computed events whose results were checked
    undigested: int = 0  # events written before digests (nothing to check them against)
    pruned: int = 0  # rows deleted by retention (a ``pruned`` event names them)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


_EVENTS_SQL = (f"SELECT seq, event, source_file_id, details FROM {sql.table(AuditEvent)} "
               "WHERE seq > ? AND event IN ('ingested', 'computed', 'pruned') ORDER BY seq "
               "LIMIT 1000")
_PATH_SQL = f"SELECT path FROM {sql.table(SourceFile)} WHERE id = ?"


def verify_rows() -> RowsReport:
    """Every digest in the trail recomputed from the rows as they are now.

    A ``pruned`` event (retention) names the files and results it deleted; their earlier
    digests are then not checked, since the rows are gone on purpose, in the trail.
    """
    report = RowsReport()
    gone_files, gone_results = _pruned()
    last = 0
    while events := sql.rows(_EVENTS_SQL, (last,)):
        for seq, event, file_id, text in events:
            last = seq
            details = json.loads(text)
            if event == "pruned":
                continue
            want = details.get("rows")
            if event == "ingested":
                if file_id in gone_files:
                    report.pruned += 1
                elif want is None:
                    report.undigested += 1
                else:
                    report.files += 1
                    if file_rows(file_id) != want:
                        found = sql.rows(_PATH_SQL, (file_id,))
                        path = found[0][0] if found else "no longer in the ledger"
                        report.problems.append(
                            f"event {seq}: the rows of file {file_id} ({path}) — its injection, "
                            "peaks or chromatograms — differ from those recorded when it was "
                            "ingested")
            else:
                ids = [r["result"] for r in details.get("results", [])]
                if gone_results.issuperset(ids):
                    report.pruned += 1
                elif want is None:
                    report.undigested += 1
                else:
                    report.computes += 1
                    if result_rows(ids) != want:
                        report.problems.append(
                            f"event {seq}: results {_ids(ids)} (job {details.get('job')}) differ "
                            "from those recorded when they were computed")
    return report


def _ids(ids: list[int]) -> str:
    shown = ", ".join(map(str, ids[:8]))
    return shown + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")


def _pruned() -> tuple[set[int], set[int]]:
    files: set[int] = set()
    results: set[int] = set()
    for (text,) in sql.rows(f"SELECT details FROM {sql.table(AuditEvent)} "
                            "WHERE event = 'pruned'"):
        details = json.loads(text)
        files.update(details.get("files", ()))
        results.update(details.get("results", ()))
    return files, results
