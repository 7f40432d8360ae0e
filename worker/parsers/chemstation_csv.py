"""Agilent ChemStation CSV report set: ``Report00.CSV`` plus ``REPORT01.CSV`` … per signal.

ChemStation writes the CSV report of one injection as a *set* inside its ``.D`` folder (all files
UTF-16 LE with a BOM, CRLF):

* ``Report00.CSV`` — the header: three-field ``"Key",value,"unit or file name"`` rows with the
  run facts (sample name, instrument, injection date, vial, injection volume …), the signals
  (``"Number of Signals",2`` then ``"Signal 1","FID1 A, "`` …) and the columns of the peak files
  (``"Number of Columns",7`` then ``"Column 1","Peak Number",""`` …). It holds no peak.
* ``REPORTnn.CSV`` — the peak rows of signal *nn*, one row per peak, no header row.

Design, chosen so that a lab user gets one injection with its sample name and all its signals:

* ``parse_set(members, options)`` (the optional set part of the parser contract, reached
  through ``worker.parsers.parse_set``) is the way to read a set: pure like ``parse``, it takes
  the bytes of the ``.D`` folder's files by name (other files such as ``Report.TXT`` are
  ignored) and returns one ``ParsedFile`` with the facts of ``Report00.CSV`` and one signal
  per ``REPORTnn.CSV``. The columns are the ones ``Report00.CSV`` names; a column we do not
  know rejects the set. A signal listed without its file, or a file for a signal not listed,
  rejects the set (it is incomplete or mixed up).
* ``parse(data, filename, options)`` on a lone ``REPORTnn.CSV`` reads it with the standard Area
  Percent columns — Peak Number, Retention Time [min], Peak Type, Peak Width [min], Area,
  Height, Area % — recognised by shape: seven fields per row, an integer, a number, the
  (quoted) type, four numbers. The signal is named from the file name (``Signal nn``) and
  there are no run facts, which the metadata says. Any other shape is rejected: without the
  header we cannot know what the columns mean.
* ``parse`` on ``Report00.CSV`` alone raises a ``ParseError`` that says it is the header of a
  report set: it has no peak to ingest on its own. ``sniff`` still recognises it with high
  confidence so that it is not mistaken for another format.

Completeness: the files have no totals row, but in an Area Percent report the Area% of a signal's
rows add up to 100 (ChemStation writes them to 15 significant digits); a sum off by more than
0.001 means rows are missing or altered and the file is rejected. A row is never skipped: a row
with the wrong number of fields or an unreadable cell rejects the file with its line.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from worker.parsers.base import (
    CERTAIN,
    MIN_CONFIDENCE,
    NOT_MINE,
    ParsedFile,
    ParseError,
    Peak,
    Signal,
    too_many,
)
from worker.parsers.chemstation_common import (
    WHOLE_NUMBER,
    decode_lines,
    describe_signal,
    injection_number,
    read_peak,
    signal_description,
    sniff_text,
    vial_from_location,
)
from worker.parsers.dates import parse_chemstation
from worker.parsers.options import ParserOptions
from worker.parsers.text import ascii_bytes, parse_number, split_lines

name = "agilent-chemstation-csv"
version = "1.0"
display_name = "Agilent ChemStation CSV report set (Report00.CSV + REPORTnn.CSV)"
extensions = (".csv",)

# Report00.CSV column name (blanks squeezed) -> Peak field.
_FIELDS = {
    "Peak Number": "number",
    "Retention Time": "rt_min",
    "Peak Type": "peak_type",
    "Peak Width": "width_min",
    "Area": "area",
    "Height": "height",
    "Area %": "area_pct",
}
# What a lone REPORTnn.CSV is read with: the Area Percent report's columns, in this order.
_STANDARD: tuple[str, ...] = tuple(_FIELDS.values())
_TEXT = ("peak_type",)
_MINUTES = ("rt_min", "width_min")
_REQUIRED = ("number", "rt_min", "area")
# Report00.CSV by its keys (90, 100 with its own name); a lone REPORTnn.CSV by the shape of
# every row (75, 85 with its name): generic seven-column rows, short of the LIKELY band alone.
_HEADER_SCORE, _ROWS_SCORE, _NAME_BONUS = 90, MIN_CONFIDENCE + 25, 10
_AREA_PCT_TOLERANCE = 1e-3

_HEADER_NAME = "report00.csv"
_PEAK_FILE = re.compile(r"report([0-9]{2})\.csv", re.IGNORECASE)
_COLUMN_KEY = re.compile(r"Column ([0-9]{1,4})")
_SIGNAL_KEY = re.compile(r"Signal ([0-9]{1,4})")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


@dataclass
class _Header:
    """What Report00.CSV says: the facts as printed, the peak columns, the signal names."""

    encoding: str
    metadata: dict[str, str] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    signals: dict[int, str] = field(default_factory=dict)


def sniff(data: bytes, filename: str, options: ParserOptions) -> int:
    """Report00.CSV by its keys; a REPORTnn.CSV by the shape of every row (it has no header)."""
    view = ascii_bytes(data, options.encoding_for(filename), options.default_encoding)
    if view is not None and view.lstrip(b"\r\n")[:1] not in _FIRST_BYTES:
        # The first cell can be neither "Sample Name" nor a peak number, quoted or not.
        return NOT_MINE
    try:
        text = sniff_text(data, filename, options)
        if text is None:
            return NOT_MINE
        # The first row settles most files: neither the header's first key nor a peak row.
        opening = text.lstrip("\r\n").split("\n", 1)[0].split("\r", 1)[0]
        if not opening:
            return NOT_MINE
        row = _fields(opening, 1, filename)
        if row[0] != "Sample Name" and not _standard_shape(row):
            return NOT_MINE
        lines = split_lines(text)
        # Read lazily: every other format fails the first row's shape, and is let go there.
        rows = (_fields(line, i, filename) for i, line in enumerate(lines, start=1) if line)
        first = next(rows, None)
        if first is None:
            return NOT_MINE
        base = _base_name(filename)
        hinted = (_NAME_BONUS if base.lower() == _HEADER_NAME or _PEAK_FILE.fullmatch(base)
                  else 0)
        if first[0] == "Sample Name":
            return min(_HEADER_SCORE + hinted, CERTAIN) if any(
                row[0] == "Number of Columns" for row in rows) else NOT_MINE
        if _standard_shape(first) and all(_standard_shape(row) for row in rows):
            return _ROWS_SCORE + hinted
    except ParseError:
        return NOT_MINE
    return NOT_MINE


def parse(data: bytes, filename: str, options: ParserOptions) -> ParsedFile:
    """One file of the set on its own (see the module docstring for what that can give)."""
    lines, encoding = decode_lines(data, filename, options)
    if _is_header(lines, filename):
        raise ParseError(
            "this is Report00.CSV, the header of a ChemStation CSV report set: it names the "
            "columns and run facts but holds no peaks; the peaks are in REPORT01.CSV … of the "
            "same .D folder, read together with chemstation_csv.parse_set", line=1,
            filename=filename)
    match = _PEAK_FILE.fullmatch(_base_name(filename))
    peaks = _read_rows(lines, list(_STANDARD), filename, options.max_peaks_per_table)
    return ParsedFile(
        format=name,
        parser_version=version,
        encoding=encoding,
        metadata={"Report set": "peak rows read without their Report00.CSV: no run facts, "
                                "standard Area Percent columns assumed"},
        signals=[_signal(int(match.group(1)) if match else None, "", peaks)],
    )


def parse_set(members: Mapping[str, bytes], options: ParserOptions) -> ParsedFile:
    """The whole report set of one ``.D`` folder, keyed by file name (a path is fine); each
    member is decoded with the code page configured for its own name."""
    by_name: dict[str, tuple[str, bytes]] = {}
    for key, data in members.items():
        base = _base_name(key)
        if base.lower() in by_name:
            raise ParseError(f"two files named {base!r} in the report set", filename=key)
        by_name[base.lower()] = (key, data)
    if _HEADER_NAME not in by_name:
        raise ParseError("the report set has no Report00.CSV (its header file)")
    header_name, header_data = by_name[_HEADER_NAME]
    header = _read_header(header_data, header_name, options)

    listed = {f"report{n:02d}.csv": n for n in header.signals}
    for base, (key, _) in sorted(by_name.items()):
        if _PEAK_FILE.fullmatch(base) and base != _HEADER_NAME and base not in listed:
            raise ParseError(f"{key} is not one of the {len(header.signals)} signals that "
                             "Report00.CSV lists", filename=key)
    signals: list[Signal] = []
    for base, number in sorted(listed.items(), key=lambda item: item[1]):
        if base not in by_name:
            raise ParseError(f"REPORT{number:02d}.CSV (signal {number}, "
                             f"{header.signals[number]!r}) is missing from the report set",
                             filename=header_name)
        key, data = by_name[base]
        lines, _ = decode_lines(data, key, options)
        peaks = _read_rows(lines, header.columns, key, options.max_peaks_per_table)
        signals.append(_signal(number, header.signals[number], peaks))

    facts = header.metadata
    operator = facts.get("Acq. Operator", "")
    if parse_chemstation(operator) is not None:
        # ChemStation writes the injection date into this field of Report00.CSV (seen in the
        # corpus); a date is not an operator, so the field is left empty rather than wrong.
        operator = ""
    return ParsedFile(
        format=name,
        parser_version=version,
        encoding=header.encoding,
        sample_name=facts.get("Sample Name") or None,
        injection=injection_number(facts.get("Inj", "")),
        vial=vial_from_location(facts.get("Location", "")),
        instrument=facts.get("Acq. Instrument") or None,
        method=facts.get("Analysis Method") or facts.get("Acq. Method") or None,
        operator=operator or None,
        acquired_at=parse_chemstation(facts.get("Injection Date", "")),
        injection_volume=facts.get("Inj Volume") or None,
        metadata=facts,
        signals=signals,
    )


def _base_name(path: str) -> str:
    """The file name of a Windows or POSIX path, without touching the file system."""
    return re.split(r"[\\/]", path)[-1]


_FIRST_BYTES = frozenset(bytes([c]) for c in b'S"0123456789')


def _fields(line: str, number: int, filename: str) -> list[str]:
    """One CSV line; the files have no quoted line breaks, so line numbers stay exact."""
    try:
        return next(csv.reader([line], strict=True))
    except csv.Error as exc:
        raise ParseError(f"malformed CSV: {exc}", line=number, filename=filename) from None


def _is_header(lines: list[str], filename: str) -> bool:
    return bool(lines) and _fields(lines[0], 1, filename)[:1] == ["Sample Name"]


def _standard_shape(row: list[str]) -> bool:
    """Seven fields: integer peak number, number, type text, then four numbers."""
    if len(row) != len(_STANDARD):
        return False
    numeric = [row[1], *row[3:]]
    return bool(WHOLE_NUMBER.fullmatch(row[0])) and all(_NUMBER.fullmatch(c) for c in numeric)


def _squeeze(text: str) -> str:
    return " ".join(text.split())


def _read_header(data: bytes, filename: str, options: ParserOptions) -> _Header:
    """Report00.CSV: every row has three fields; the counts it states must all be present."""
    lines, encoding = decode_lines(data, filename, options)
    header = _Header(encoding)
    columns: dict[int, tuple[str, str, int]] = {}
    counts: dict[str, tuple[int, int]] = {}
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        row = _fields(line, number, filename)
        if len(row) != 3:
            raise ParseError(f"expected 3 fields (key, value, unit), found {len(row)}",
                             line=number, filename=filename)
        key, value, extra = _squeeze(row[0]), row[1].strip(), _squeeze(row[2])
        if key in header.metadata:
            raise ParseError(f"{key!r} is given twice", line=number, filename=filename)
        # A path is split into folder and file name; a quantity into value and unit.
        header.metadata[key] = (value + extra if value.endswith("\\")
                                else f"{value} {extra}".strip())
        if key in ("Number of Columns", "Number of Signals"):
            if not WHOLE_NUMBER.fullmatch(value):
                raise ParseError(f"{key} {value!r} is not a whole number", line=number,
                                 filename=filename)
            counts[key] = (int(value), number)
        elif m := _COLUMN_KEY.fullmatch(key):
            columns[int(m.group(1))] = (_squeeze(value), extra, number)
        elif m := _SIGNAL_KEY.fullmatch(key):
            header.signals[int(m.group(1))] = signal_description(value)

    for key, listed in (("Number of Columns", columns), ("Number of Signals", header.signals)):
        if key not in counts:
            raise ParseError(f"no {key!r} row: not a complete Report00.CSV", line=len(lines),
                             filename=filename)
        count, number = counts[key]
        if count == 0 or sorted(listed) != list(range(1, count + 1)):
            raise ParseError(f"{key} says {count} but rows {sorted(listed)} are given",
                             line=number, filename=filename)
    for index in sorted(columns):
        column, unit, number = columns[index]
        peak_field = _FIELDS.get(column)
        if peak_field is None or peak_field in header.columns:
            raise ParseError(f"unknown or repeated column {column!r}", line=number,
                             filename=filename)
        if peak_field in _MINUTES and unit != "min":
            raise ParseError(f"column {column!r} is in {unit!r}, not min", line=number,
                             filename=filename)
        header.columns.append(peak_field)
    missing = [f for f in _REQUIRED if f not in header.columns]
    if missing:
        raise ParseError(f"the peak columns lack {', '.join(missing)}", line=len(lines),
                         filename=filename)
    return header


def _read_rows(lines: list[str], columns: list[str], filename: str,
               max_peaks: int) -> list[Peak]:
    """Every line is a peak row (blank lines only at the end), checked against the Area% sum."""
    last = len(lines)
    while last and not lines[last - 1]:
        last -= 1
    if last == 0:
        raise ParseError("no peak rows", line=1, filename=filename)
    if last > max_peaks:
        raise too_many("peaks in the table", max_peaks, "max_peaks_per_table",
                       line=max_peaks + 1, filename=filename)
    peaks: list[Peak] = []
    for number, line in enumerate(lines[:last], start=1):
        if not line:
            raise ParseError("blank line among the peak rows", line=number, filename=filename)
        row = _fields(line, number, filename)
        if len(row) != len(columns):
            raise ParseError(f"expected {len(columns)} fields, found {len(row)}", line=number,
                             filename=filename)
        peaks.append(read_peak(dict(zip(columns, row, strict=True)), number, peaks, filename,
                               text_fields=_TEXT, number=_number))
    if "area_pct" in columns:
        total_pct = math.fsum(p.area_pct or 0.0 for p in peaks)
        if abs(total_pct - 100.0) > _AREA_PCT_TOLERANCE:
            raise ParseError(f"the Area% of the {len(peaks)} rows add up to {total_pct:.6g}, not "
                             "100: rows are missing or altered (file cut off?)", line=last,
                             filename=filename)
    return peaks


def _number(cell: str, field: str, line: int, filename: str) -> float:
    return parse_number(cell, what=field, line=line, filename=filename)


def _signal(number: int | None, description: str, peaks: list[Peak]) -> Signal:
    """A signal named as Report00.CSV describes it (or by its number when alone); with no
    printed total in the CSV, the total area is the sum of the rows."""
    detector, wavelength = describe_signal(description)
    fallback = f"Signal {number}" if number is not None else "Signal"
    return Signal(name=description or fallback, detector=detector, wavelength_nm=wavelength,
                  peaks=peaks, total_area=math.fsum(p.area for p in peaks))
