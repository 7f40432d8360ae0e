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
_NUMERIC_PAIR = re.compile(rf"^\s*{_NUM}\s*[,\t;]\s*{_NUM}\s*$")


def sniff(data: bytes, filename: str, options: ParserOptions) -> int:
    """A generic shape (MIN_CONFIDENCE + 10); LIKELY when the name is an Agilent signal export
    (``.dx_DAD1A.CSV``)."""
    try:
        text, _ = decode(data[:8192] if len(data) > 8192 else data,
                         configured=options.encoding_for(filename))
    except (ParseError, UnicodeDecodeError):
        return NOT_MINE
    lines = [ln for ln in split_lines(text)[:21] if ln.strip()]
    if len(data) > 8192:
        lines = lines[:-1]  # the cut may fall mid-line
    if not lines:
        return NOT_MINE
    body = lines[1:] if not _NUMERIC_PAIR.match(lines[0]) else lines
    if not body or not all(_NUMERIC_PAIR.match(ln) for ln in body):
        return NOT_MINE
    return LIKELY if _SIGNAL_IN_NAME.search(filename) else MIN_CONFIDENCE + 10


def parse(data: bytes, filename: str, options: ParserOptions) -> ParsedFile:
    text, encoding = decode(data, filename, configured=options.encoding_for(filename))
    first_end = min((i for i in (text.find("\n"), text.find("\r")) if i >= 0), default=len(text))
    first = text[:first_end]
    header: list[str] | None = None
    body = text
    if first.strip() and not _NUMERIC_PAIR.match(first):
        header = [c.strip().strip('"') for c in re.split(r"[,\t;]", first)]
        if len(header) != 2:
            raise ParseError(f"header names {len(header)} columns; a trace has two (time, value)",
                             line=1, filename=filename)
        body = text[first_end + (2 if text[first_end:first_end + 2] == "\r\n" else 1):]
    # TAB, then semicolon (never a decimal mark, so a file that has one separates with it),
    # then comma; decimal commas only go with the first two.
    head = body[:1000]
    delimiter = "\t" if "\t" in first or "\t" in head else (";" if ";" in head else ",")
    decimal_comma = delimiter in "\t;" and "," in body[:1000]
    times, values = _columns(body, delimiter, decimal_comma, filename, 2 if header else 1)
    _check_times(times, text, filename, 2 if header else 1)

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
            format=name, parser_version=version, encoding=encoding,
            signals=[Signal(name=signal_name, detector=detector,
                            trace=Trace(times=times, values=values, time_unit=time_unit,
                                        value_unit=value_unit or ("mAU" if detector else None)))],
        )


def _columns(body: str, delimiter: str, decimal_comma: bool, filename: str,
             first_line: int) -> tuple[array, array]:
    """Every row exactly two finite numbers (the shared exact reader), blank lines only at the
    end."""
    lines = lines_of(body)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ParseError("trace has no data rows", line=first_line, filename=filename)
    try:
        times, values = read_numeric_rows(lines, 1, len(lines) + 1, ("time", "value"),
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
