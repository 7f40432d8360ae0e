"""Thermo Chromeleon ASCII chromatogram export (Chromeleon 6.x and 7.x).

Layout: a few ``key<TAB>value`` lines (file path, channel), then blocks introduced by a line
ending in ``:`` (6.x: ``Sample Information:``, ``Raw Data Header Information:``, ``Signal Parameter
Information:``; 7.x: ``Injection Information:``, ``Chromatogram Data Information:`` …), then
``Raw Data:`` (6.x) or ``Chromatogram Data:`` (7.x), a column header ``Time(min)  Step(sec)
Value(mAU)`` and one row per point. Decisions, and why:

* **Decimal separator per file, from the data itself**: German and other locales write
  ``0,001667``. The first rows decide; every cell of the file must then follow that choice, so a
  ``1,234`` is never read as 1.234 in one file and 1234 in another.
* **Completeness**: the header's ``Data Points`` must equal the number of rows read, and the last
  row must end with a line end; a file cut off while being copied is rejected with the line.
  A file without a ``Data Points`` line cannot be checked and is rejected.
* The ``Step`` column (seconds since the previous point) is validated but not kept: it is
  redundant with the times. ``n.a.`` is accepted there (7.x writes it on the first row) and
  nowhere else.
* Sample facts (Sample / Injection, Sample ID, Type, Injection Volume, Dilution Factor, Date +
  Time) fill the typed fields; every header line is also kept in ``metadata`` as
  ``"<block>.<key>"``, and ``sample_id`` / ``dilution_factor`` are added in a normalised form.
"""

from __future__ import annotations

import re

from worker.parsers.base import (
    MIN_CONFIDENCE,
    NOT_MINE,
    ParsedFile,
    ParseError,
    Signal,
    Trace,
    validated,
)
from worker.parsers.dates import acquisition
from worker.parsers.options import ParserOptions
from worker.parsers.text import (
    decode,
    lines_of,
    parse_number,
    read_numeric_rows,
    require_line_end,
    sample_kind,
)

name = "chromeleon"
version = "1.0.0"
display_name = "Thermo Chromeleon ASCII chromatogram export"
extensions = (".txt",)

_DATA_MARKERS = ("Raw Data:", "Chromatogram Data:")
_INFO_BLOCKS = ("Raw Data Header Information:", "Chromatogram Data Information:",
                "Sample Information:", "Injection Information:")
_UNIT = re.compile(r"\(\s*([^()]*?)\s*\)\s*$")
_SNIFF_BYTES = 65536
_DIGITS = re.compile(r"\d+", re.ASCII)
_DECIMAL_PROBE_ROWS = 50
_KINDS = (("standard", "standard"), ("blank", "blank"), ("sample", "sample"),
          ("unknown", "sample"))
# An information block and the data marker: the signature (95). A data information block
# alone: the header of an export whose data may be cut off, so parse says what is missing (70).
_SIGNATURE, _HEADER_ONLY = 95, MIN_CONFIDENCE + 20


def sniff(data: bytes, filename: str, options: ParserOptions) -> int:
    """Confidence from the content: Chromeleon's ``… Information:`` blocks and data marker."""
    head = data[:_SNIFF_BYTES]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = head.decode("utf-16", errors="ignore")
    elif b"Information:" not in head:
        return NOT_MINE  # every score needs an "… Information:" line; Latin-1 keeps ASCII as is
    else:
        text = head.decode("latin-1")
    lines = {line.strip() for line in text.splitlines()}
    has_info = any(block in lines for block in _INFO_BLOCKS)
    has_marker = any(marker in lines for marker in _DATA_MARKERS)
    if has_info and has_marker:
        return _SIGNATURE
    if "Raw Data Header Information:" in lines or "Chromatogram Data Information:" in lines:
        return _HEADER_ONLY
    return NOT_MINE


def parse(data: bytes, filename: str, options: ParserOptions) -> ParsedFile:
    """Header blocks, then every data row; the row count must match ``Data Points``."""
    text, encoding = decode(data, filename, configured=options.encoding_for(filename),
                            default=options.default_encoding)
    lines = lines_of(text)
    marker = next((i for i, line in enumerate(lines) if line.strip() in _DATA_MARKERS), None)
    if marker is None:
        raise ParseError("no 'Raw Data:' or 'Chromatogram Data:' line: the file has no data "
                         "table (cut off, or exported without raw data)", line=len(lines) or None)
    metadata, key_lines = _header(lines[:marker])
    columns_line = marker + 2
    if columns_line > len(lines):
        raise ParseError("the data column header line is missing after "
                         f"{lines[marker].strip()!r}", line=marker + 1)
    columns = [cell.strip() for cell in lines[columns_line - 1].split("\t")]
    if columns and not columns[-1]:
        columns.pop()
    time_at, value_at, step_at = _column_positions(columns, columns_line)
    stop = len(lines)
    while stop > columns_line and not lines[stop - 1].strip():
        stop -= 1
    if stop > columns_line:
        require_line_end(text, stop)
    decimal_comma = _decimal_comma(lines[columns_line:min(stop, columns_line
                                                          + _DECIMAL_PROBE_ROWS)])
    times, values = read_numeric_rows(
        lines, columns_line + 1, stop + 1, columns, keep=(time_at, value_at),
        decimal_comma=decimal_comma, not_available=() if step_at is None else (step_at,))
    _check_count(metadata, key_lines, len(times), stop)
    if not times:
        raise ParseError("the data table has no rows", line=columns_line)
    unit_match = _UNIT.search(columns[value_at])
    time_match = _UNIT.search(columns[time_at])
    unit = unit_match[1] if unit_match else _first(metadata, "Signal Dimension", "Signal Unit")
    trace = Trace(times=times, values=values, time_unit=time_match[1] if time_match else "min",
                  value_unit=unit)
    return _build(metadata, trace, encoding, decimal_comma, options.date_order)


def _header(lines: list[str]) -> tuple[dict[str, str], dict[str, int]]:
    """``key<TAB>value`` lines, keyed with their block's name (``Sample Information.Type``)."""
    metadata: dict[str, str] = {}
    key_lines: dict[str, int] = {}
    block = ""
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if "\t" not in line and stripped.endswith(":"):
            block = stripped[:-1]
            continue
        key, tab, value = line.partition("\t")
        if not tab:
            if not metadata:
                raise ParseError(f"not a Chromeleon header line: {stripped[:60]!r}", line=number)
            # A multi-line value (a sample comment with line breaks) continues the last key.
            last = next(reversed(metadata))
            metadata[last] = f"{metadata[last]}\n{stripped}"
            continue
        full_key = f"{block}.{key.strip()}" if block else key.strip()
        metadata[full_key] = value.strip()
        key_lines[full_key] = number
    return metadata, key_lines


def _column_positions(columns: list[str], line: int) -> tuple[int, int, int | None]:
    def find(prefix: str) -> int | None:
        return next((i for i, c in enumerate(columns) if c.lower().startswith(prefix)), None)

    time_at, value_at, step_at = find("time"), find("value"), find("step")
    if time_at is None or value_at is None:
        raise ParseError(f"data column header {columns!r} lacks a Time or Value column",
                         line=line)
    return time_at, value_at, step_at


def _decimal_comma(rows: list[str]) -> bool:
    """Decimal comma when the first rows' numbers use one (``0,001667``), point otherwise."""
    for row in rows:
        for cell in row.split("\t"):
            if cell == "n.a.":
                continue
            if "," in cell:
                return True
            if "." in cell:
                return False
    return False


def _first(metadata: dict[str, str], *keys: str) -> str | None:
    """The value of the first of ``keys`` present in any block (block prefix ignored)."""
    for key in keys:
        for full_key, value in metadata.items():
            if (full_key == key or full_key.endswith(f".{key}")) and value:
                return value
    return None


def _first_prefixed(metadata: dict[str, str], prefix: str) -> tuple[str, str] | None:
    """(key, value) of the first key starting with ``prefix`` (units vary: ``(µl)``, ``(µL)``)."""
    for full_key, value in metadata.items():
        if full_key.rpartition(".")[2].startswith(prefix) and value:
            return full_key.rpartition(".")[2], value
    return None


def _check_count(metadata: dict[str, str], key_lines: dict[str, int], rows: int,
                 last_line: int) -> None:
    key = next((k for k in metadata if k.rpartition(".")[2] == "Data Points"), None)
    if key is None:
        raise ParseError("no 'Data Points' line in the header: completeness cannot be checked",
                         line=None)
    stated = parse_number(metadata[key], what="Data Points", line=key_lines[key])
    if stated != rows:
        raise ParseError(f"the header states {metadata[key]} data points but the table has "
                         f"{rows} rows (file cut off or edited)", line=last_line)


def _number_text(value: str, decimal_comma: bool) -> str:
    return value.replace(",", ".") if decimal_comma else value


def _build(metadata: dict[str, str], trace: Trace, encoding: str,
           decimal_comma: bool, date_order: str) -> ParsedFile:
    kind = sample_kind(_first(metadata, "Type"), _KINDS)
    date, time = _first(metadata, "Injection Date", "Date"), _first(metadata, "Injection Time",
                                                                     "Time")
    acquired_at, date_flag = acquisition(
        f"{date} {time}" if time and date else date, date_order=date_order,
        others=[v for k, v in metadata.items() if "Date" in k])
    volume = _first_prefixed(metadata, "Injection Volume")
    injection_volume = None
    if volume:
        unit = _UNIT.search(volume[0])
        injection_volume = _number_text(volume[1], decimal_comma) + (f" {unit[1]}" if unit else "")
    injection_text = _first(metadata, "Injection Number", "Sample Number")
    dilution = _first(metadata, "Dilution Factor")
    if dilution:
        metadata["dilution_factor"] = _number_text(dilution, decimal_comma)
    if sample_id := _first(metadata, "Sample ID"):
        metadata["sample_id"] = sample_id
    wavelength = _first(metadata, "Wavelength")
    wavelength_match = re.match(r"^\s*(\d+(?:[.,]\d+)?)\s*nm\s*$", wavelength or "")
    channel = _first(metadata, "Channel", "Channel Name") or "signal"
    with validated("invalid content"):
        signal = Signal(
            name=channel, detector=_first(metadata, "Driver Name", "Detector"), trace=trace,
            wavelength_nm=float(_number_text(wavelength_match[1], decimal_comma))
            if wavelength_match else None)
        return ParsedFile(
            format=name, parser_version=version, encoding=encoding,
            sample_name=_first(metadata, "Sample", "Injection"),
            injection=int(injection_text)
            if injection_text and _DIGITS.fullmatch(injection_text) else None,
            sample_kind=kind, vial=_first(metadata, "Sample Position", "Position"),
            instrument=_first(metadata, "Instrument"),
            method=_first(metadata, "PGM file", "Instrument Method"),
            operator=_first(metadata, "Operator"), acquired_at=acquired_at,
            injection_volume=injection_volume, metadata=metadata, signals=[signal],
            flags=[date_flag] if date_flag else [],
            dilution_factor=float(metadata["dilution_factor"]) if dilution else None)
