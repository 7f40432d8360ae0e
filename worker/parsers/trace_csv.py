"""Generic two-column chromatogram traces: ``time,value`` per line, with or without a header.

This covers the Agilent OpenLab DAD signal export (``*.dx_DAD1A.CSV``: no header, time in
minutes, signal in mAU) and the plain ``time,intensity`` files other software writes, comma or
TAB separated, in any encoding ``text.decode`` accepts. Traces can be tens of megabytes, so the
numbers are converted in bulk and a line-by-line scan runs only to name the line of an error.
"""

from __future__ import annotations

import math
import re
from array import array

from worker.parsers.base import (
    LIKELY,
    MIN_CONFIDENCE,
    NOT_MINE,
    ParsedFile,
    ParseError,
    Signal,
    Trace,
    validated,
)
from worker.parsers.options import ParserOptions
from worker.parsers.text import decode, lines_of, read_numeric_rows, split_lines

name = "trace-csv"
version = "1.0"
display_name = "Two-column chromatogram trace (time, value)"
extensions = (".csv", ".txt", ".tsv")

_SIGNAL_IN_NAME = re.compile(r"\.dx_([A-Za-z]+)(\d*)([A-Z]?)\.csv$", re.IGNORECASE)
# One number, with a decimal point or (TAB and semicolon files) a decimal comma.
_NUM = r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?"
_NUMERIC_PAIR = re.compile(rf"^\s*{_NUM}(?:\s*[,\t;]\s*|[ \t]+){_NUM}\s*$")
# A line starting with a number and a separator: a data row, even when broken.
_LOOKS_NUMERIC = re.compile(rf"^\s*{_NUM}\s*(?:[,\t;]|\s+[+-]?[.0-9])")
# The line ChemStation macros write after the last point.
_TERMINATOR = "EOT"
_SNIFF_LINES = 21
_MAX_PREAMBLE = 50


def sniff(data: bytes, filename: str, options: ParserOptions) -> int:
    """A generic shape (MIN_CONFIDENCE + 10); LIKELY when the name is an Agilent signal export
    (``.dx_DAD1A.CSV``); MIN_CONFIDENCE when text lines precede the data (a preamble)."""
    try:
        text, _ = decode(data[:8192] if len(data) > 8192 else data,
                         configured=options.encoding_for(filename),
                         default=options.default_encoding)
    except (ParseError, UnicodeDecodeError):
        return NOT_MINE
    lines = [ln for ln in split_lines(text)[:_SNIFF_LINES] if ln.strip()]
    if len(data) > 8192:
        lines = lines[:-1]  # the cut may fall mid-line
    if lines and lines[-1].strip() == _TERMINATOR:
        lines.pop()
    first = next((i for i, ln in enumerate(lines) if _NUMERIC_PAIR.match(ln)), None)
    if first is None or not all(_NUMERIC_PAIR.match(ln) for ln in lines[first:]):
        return NOT_MINE
    if any(_LOOKS_NUMERIC.match(ln) for ln in lines[:first]):
        return NOT_MINE
    if first > 1:
        return MIN_CONFIDENCE
    return LIKELY if _SIGNAL_IN_NAME.search(filename) else MIN_CONFIDENCE + 10


def parse(data: bytes, filename: str, options: ParserOptions) -> ParsedFile:
    """Optional preamble lines and a ``time,value`` header, the rows, an optional ``EOT``."""
    text, encoding = decode(data, filename, configured=options.encoding_for(filename),
                            default=options.default_encoding)
    lines = lines_of(text)
    stop = len(lines)
    while stop and not lines[stop - 1].strip():
        stop -= 1
    terminated = bool(stop) and lines[stop - 1].strip() == _TERMINATOR
    if terminated:
        stop -= 1
    first = _first_row(lines, stop, filename)
    if first >= stop:
        raise ParseError("trace has no data rows", line=stop + 1, filename=filename)
    header: list[str] | None = None
    metadata: dict[str, str] = {}
    if first == 1 and lines[0].strip():
        header = [c.strip().strip('"') for c in re.split(r"[,\t;]", lines[0])]
        if len(header) != 2:
            raise ParseError(f"header names {len(header)} columns; a trace has two (time, value)",
                             line=1, filename=filename)
    elif first > 1:
        # Text before the data (the data file's path, "Start of data points" …) is kept; its
        # last line is the column header when it names exactly two columns.
        last = [c.strip().strip('"') for c in re.split(r"[,\t;]", lines[first - 1])]
        if len(last) == 2 and all(last):
            header = last
        for i, line in enumerate(lines[:first]):
            if line.strip():
                metadata[f"preamble.{i + 1}"] = line.strip()
    if terminated:
        metadata["terminator"] = _TERMINATOR
    row = lines[first] if first < stop else ""
    if "\t" in row or (header is not None and "\t" in lines[first - 1]):
        delimiter = "\t"
    elif ";" in row:
        delimiter = ";"
    elif "," in row or not row.split():
        delimiter = ","
    else:
        delimiter = " "  # whitespace-separated (ChemStation macro output)
    head = "\n".join(lines[first:first + 20])
    decimal_comma = delimiter in "\t;" and "," in head
    body = lines[first:stop]
    if delimiter == " ":
        body = [" ".join(line.split()) for line in body]
    times, values = _columns(body, delimiter, decimal_comma, filename, first + 1)
    _check_times(times, text, filename, first + 1)

    signal_name, detector = _signal_from_name(filename)
    time_unit, value_unit = "min", None
    if header:
        signal_name = signal_name if detector else header[1] or "trace"
        value_unit = _unit(header[1])
        time_unit = _unit(header[0]) or "min"
        if time_unit in ("s", "sec"):
            times = array("d", (t / 60 for t in times))
            time_unit = "min"
    with validated("invalid content", filename=filename):
        return ParsedFile(
            format=name, parser_version=version, encoding=encoding, metadata=metadata,
            signals=[Signal(name=signal_name, detector=detector,
                            trace=Trace(times=times, values=values, time_unit=time_unit,
                                        value_unit=value_unit or ("mAU" if detector else None)))],
        )


def _first_row(lines: list[str], stop: int, filename: str) -> int:
    """The 0-based index of the first ``time,value`` row; the lines before it are a preamble.

    A preamble line that starts like a number is a broken data row, not text: it is rejected
    with its line rather than skipped.
    """
    for i in range(min(stop, _MAX_PREAMBLE + 1)):
        if _NUMERIC_PAIR.match(lines[i]):
            return i
        if _LOOKS_NUMERIC.match(lines[i]):
            raise ParseError("expected a row of two numbers (time, value)", line=i + 1,
                             filename=filename)
    if stop <= _MAX_PREAMBLE + 1:
        if stop <= 1:
            return stop
        raise ParseError("trace has no data rows (no line of two numbers, time and value)",
                         line=stop, filename=filename)
    raise ParseError(f"no row of two numbers (time, value) in the first {_MAX_PREAMBLE + 1} "
                     "lines", line=_MAX_PREAMBLE + 1, filename=filename)


def _columns(body: list[str], delimiter: str, decimal_comma: bool, filename: str,
             first_line: int) -> tuple[array, array]:
    """Every row exactly two finite numbers (the shared exact reader), blank lines only at the
    end."""
    if not body:
        raise ParseError("trace has no data rows", line=first_line, filename=filename)
    try:
        times, values = read_numeric_rows(body, 1, len(body) + 1, ("time", "value"),
                                          keep=(0, 1), delimiter=delimiter,
                                          decimal_comma=decimal_comma)
    except ParseError as exc:
        exc.filename = filename
        if exc.line is not None:
            exc.line += first_line - 1
        raise
    return times, values


def _check_times(times: array, text: str, filename: str, first_line: int) -> None:
    previous = -math.inf
    for i, t in enumerate(times):
        if t < previous:
            raise ParseError(f"time goes backwards ({t} after {previous})", line=first_line + i,
                             filename=filename)
        previous = t


def _signal_from_name(filename: str) -> tuple[str, str | None]:
    match = _SIGNAL_IN_NAME.search(filename)
    if not match:
        return "trace", None
    detector = f"{match.group(1).upper()}{match.group(2)}"
    return f"{detector} {match.group(3)}".strip(), detector


def _unit(label: str) -> str | None:
    match = re.search(r"[\[(]\s*([^\])]+?)\s*[\])]", label)
    return match.group(1) if match else None
