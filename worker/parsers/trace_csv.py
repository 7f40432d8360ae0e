"""Generic two-column chromatogram traces: ``time,value`` per line, with or without a header.

This covers the Agilent OpenLab DAD signal export (``*.dx_DAD1A.CSV``: no header, time in
minutes, signal in mAU) and the plain ``time,intensity`` files other software writes, comma or
TAB separated, in any encoding ``text.decode`` accepts. Traces can be tens of megabytes, so the
numbers are converted in bulk and a line-by-line scan runs only to name the line of an error.
"""

from __future__ import annotations

import codecs
import json
import math
import mmap
import re
import struct
from array import array
from collections.abc import Callable
from functools import lru_cache

from worker.parsers.base import (
    LIKELY,
    MIN_CONFIDENCE,
    NOT_MINE,
    ParsedFile,
    ParseError,
    Signal,
    Trace,
    too_many,
    validated,
)
from worker.parsers.options import ParserOptions
from worker.parsers.text import decode, lines_of, read_numeric_rows

name = "trace-csv"
version = "1.0"
display_name = "Two-column chromatogram trace (time, value)"
extensions = (".csv", ".txt", ".tsv")
# parse takes any bytes-like object and reads it a slice at a time (parsers/README.md).
reads_slices = True

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
    # Only the first lines are looked at: split no further than them (without a CR, str.split
    # cuts where the regex would, many times faster).
    pieces = (text.split("\n", _SNIFF_LINES) if "\r" not in text else
              _LINE_BREAK.split(text, _SNIFF_LINES))
    # Every line from the first row on is a row, so the last one looked at must be: most text
    # that is not a trace (a report's preamble, a table) is ruled out by that one test, before
    # the other lines are even stripped.
    last = _last_looked_at(pieces[:_SNIFF_LINES], cut=len(data) > 8192)
    if last is None or not _NUMERIC_PAIR.match(last):
        return NOT_MINE
    lines = [ln for ln in pieces[:_SNIFF_LINES] if ln.strip()]
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


def _last_looked_at(pieces: list[str], cut: bool) -> str | None:
    """The last of the non-blank ``pieces`` once the one a cut may have broken (``cut``) and
    then an ``EOT`` line are left out, as ``sniff`` drops them; None if none is left."""
    terminator_checked = False
    for line in reversed(pieces):
        if not line.strip():
            continue
        if cut:
            cut = False
        elif not terminator_checked and line.strip() == _TERMINATOR:
            terminator_checked = True
        else:
            return line
    return None


# A trace is read a slice of this many bytes at a time (cut at a line end), so what parsing
# holds besides the two output arrays stays small whatever the file's size.
CHUNK_BYTES = 1 << 18
# The preamble, header and first rows are looked for in this much of the start, the
# terminator and trailing blank lines in this much of the end.
_EDGE_BYTES = 65536
_LONGEST_LINE = 1 << 20
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_BREAK = re.compile(rb"\r\n|\r|\n")


def parse(data: bytes, filename: str, options: ParserOptions) -> ParsedFile:
    """Optional preamble lines and a ``time,value`` header, the rows, an optional ``EOT``.

    ``data`` may be any bytes-like object that slices to bytes (an ``mmap`` of the stored file
    included): it is read a slice at a time, and the pages of an mmap already read are handed
    back to the system, so memory stays bounded by the points, never the file's size.
    """
    if bytes(data[:2]) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        # UTF-16 traces (not seen from instruments) are decoded whole.
        whole = bytes(data)
        text, encoding = decode(whole, filename, configured=options.encoding_for(filename),
                                default=options.default_encoding)
        utf8 = text.encode("utf-8")
        return _parse(utf8, utf8, "utf-8", encoding, filename, options)
    head = bytes(data[:_EDGE_BYTES])
    if len(data) > _EDGE_BYTES:
        cut = max(head.rfind(b"\n"), head.rfind(b"\r"))
        head = head[:cut + 1] if cut >= 0 else head
    text, encoding = decode(head, filename, configured=options.encoding_for(filename),
                            default=options.default_encoding)
    codec = "utf-8" if encoding == "utf-8-sig" else encoding
    return _parse(data, head, codec, encoding, filename, options)


def _parse(data: bytes, head: bytes, codec: str, encoding: str, filename: str,
           options: ParserOptions) -> ParsedFile:
    """The trace in ``data`` whose first lines are ``head`` (both in ``codec``, an ASCII-
    transparent code page)."""
    skip = 3 if head.startswith(codecs.BOM_UTF8) else 0
    head_text = _text(head[skip:], codec, 1, filename)
    lines = lines_of(head_text)
    whole = len(head) == len(data)
    stop, body_end, terminated = _end(data, codec, filename, len(lines) if whole else None)
    if whole:
        stop = min(stop, len(lines))
    first = _first_row(lines, stop if whole else len(lines), filename)
    if whole and first >= stop:
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
    row = lines[first] if first < len(lines) else ""
    if "\t" in row or (header is not None and "\t" in lines[first - 1]):
        delimiter = "\t"
    elif ";" in row:
        delimiter = ";"
    elif "," in row or not row.split():
        delimiter = ","
    else:
        delimiter = " "  # whitespace-separated (ChemStation macro output)
    sample = "\n".join(lines[first:first + 20])
    decimal_comma = delimiter in "\t;" and "," in sample
    times, values = _rows(data, _line_start(head, first, skip), body_end, codec, delimiter,
                          decimal_comma, filename, first + 1, options)

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


def _text(raw: bytes, codec: str, line: int, filename: str) -> str:
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as exc:
        raise ParseError(f"cannot decode as {codec} (byte 0x{raw[exc.start]:02X}) where the "
                         "head of the file was", line=line + raw[:exc.start].count(b"\n"),
                         filename=filename) from None


def _line_start(raw: bytes, index: int, skip: int = 0) -> int:
    """The byte offset where line ``index`` (0-based) of ``raw[skip:]`` starts (CR LF, CR and
    LF end a line); the end of ``raw`` when it has fewer lines."""
    if index == 0:
        return skip
    body = raw[skip:]
    cr, lf = body.count(b"\r"), body.count(b"\n")
    eol = b"\n" if not cr else b"\r" if not lf else \
        b"\r\n" if cr == lf == body.count(b"\r\n") else None
    if eol is not None:
        # One line end throughout: a split in C, not a regex match per line.
        pieces = body.split(eol, index)
        return len(raw) - len(pieces[-1]) if len(pieces) > index else len(raw)
    for found, match in enumerate(_BREAK.finditer(raw, skip), 1):
        if found == index:
            return match.end()
    return len(raw)


def _end(data: bytes, codec: str, filename: str,
         total: int | None) -> tuple[int, int, bool]:
    """(lines before the trailing blank lines and terminator, as a count of the file's lines
    when ``total`` is known; the byte offset where they start; whether an ``EOT`` ends it)."""
    size = len(data)
    base = max(0, size - _EDGE_BYTES)
    tail = bytes(data[base:])
    if base:
        cut = tail.find(b"\n")
        cut = tail.find(b"\r") if cut < 0 else cut
        if cut < 0:
            return (total or 0), size, False
        base, tail = base + cut + 1, tail[cut + 1:]
    elif tail.startswith(codecs.BOM_UTF8):
        base, tail = 3, tail[3:]
    try:
        lines = lines_of(tail.decode(codec))
    except UnicodeDecodeError:
        return (total or 0), size, False  # the rows say where, as they are read
    keep = len(lines)
    while keep and not lines[keep - 1].strip():
        keep -= 1
    terminated = bool(keep) and lines[keep - 1].strip() == _TERMINATOR
    if terminated:
        keep -= 1
    end = base + _line_start(tail, keep) if keep < len(lines) else size
    count = (total - (len(lines) - keep)) if total is not None else 0
    return count, end, terminated


def _rows(data: bytes, start: int, end: int, codec: str, delimiter: str, decimal_comma: bool,
          filename: str, first_line: int, options: ParserOptions) -> tuple[array, array]:
    """Every row of ``data[start:end]`` exactly two finite numbers, times never going back; a
    slice of CHUNK_BYTES at a time."""
    if end <= start:
        raise ParseError("trace has no data rows", line=first_line, filename=filename)
    newline = b"\n" if bytes(data[start:min(end, start + _EDGE_BYTES)]).find(b"\n") >= 0 \
        else b"\r"
    release = _releaser(data)
    fast = _ascii_transparent(codec)
    # Counted first, so the arrays are made once at their size: grown row by row, each would
    # be copied as it grew, twice its size at times.
    rows, plan = _plan(data, start, end, newline, delimiter if fast else "", decimal_comma,
                       release)
    if rows > options.max_trace_points:
        raise too_many("points in the trace", options.max_trace_points, "max_trace_points",
                       line=first_line + options.max_trace_points, filename=filename)
    times, values = array("d", [0.0]) * rows, array("d", [0.0]) * rows
    line, at, filled = first_line, start, 0
    previous = -math.inf
    slices = iter(plan)
    while at < end:
        stop, eol = next(slices, (None, None))
        if stop is None:
            stop = _slice_end(data, at, end, newline)
            if stop is None:
                raise ParseError(f"a line longer than {_LONGEST_LINE:,} bytes: not a row of "
                                 "two numbers (time, value)", line=line, filename=filename)
        raw = bytes(data[at:stop])
        if eol is not None:
            columns = _numbers(raw, delimiter.encode("ascii"), eol, decimal_comma)
        else:
            columns = fast_columns(raw, delimiter, decimal_comma) if fast else None
        if columns is None:
            # Something the fast check does not vouch for: the exact reader names the line.
            body = lines_of(_text(raw, codec, line, filename))
            if delimiter == " ":
                body = [" ".join(row.split()) for row in body]
            columns = _columns(body, delimiter, decimal_comma, filename, line)
        del raw
        chunk_times, chunk_values = columns
        del columns
        previous = _check_times(chunk_times, previous, filename, line)
        count = len(chunk_times)
        if isinstance(chunk_times, list) and filled + count <= rows:
            # Packed straight into the arrays: fewer steps per number than array(list). (More
            # rows than counted: line ends other than the one counted; the slice assignment
            # below grows the arrays.)
            doubles = struct.Struct(f"{count}d")
            doubles.pack_into(times, filled * 8, *chunk_times)
            doubles.pack_into(values, filled * 8, *chunk_values)
        else:
            times[filled:filled + count] = array("d", chunk_times)
            values[filled:filled + count] = array("d", chunk_values)
        del chunk_times, chunk_values
        filled += count
        line += count  # every line of a slice is a row, or it was refused
        release(stop)
        at = stop
    del times[filled:], values[filled:]
    return times, values


def _slice_end(data: bytes, at: int, end: int, newline: bytes) -> int | None:
    """Where the slice of ``data[at:end]`` read next ends: after the last ``newline`` within
    CHUNK_BYTES, or after a longer line; None when that line is longer than _LONGEST_LINE."""
    if end - at <= CHUNK_BYTES:
        return end
    stop = data.rfind(newline, at, at + CHUNK_BYTES) + 1
    if stop > at:
        return stop
    stop = data.find(newline, at, min(end, at + _LONGEST_LINE)) + 1
    if stop > at:
        return stop
    return end if end - at <= _LONGEST_LINE else None


def _plan(data: bytes, start: int, end: int, newline: bytes, delimiter: str,
          decimal_comma: bool,
          release: Callable[[int], None]) -> tuple[int, list[tuple[int, bytes | None]]]:
    """The lines in ``data[start:end]`` (a last one without its line end included: at least
    the rows there, for the arrays to hold them), and the slices to read: each one's end and,
    when its shape is already checked (``delimiter`` given, one delimiter and one ``newline``
    per line), the line end its rows use. Counting needs a pass over the trace anyway: the
    shape check is that pass, for the slices it vouches for."""
    sep = delimiter.encode("ascii") if delimiter in (",", "\t", ";") else None
    rows, at = 0, start
    plan: list[tuple[int, bytes | None]] = []
    while at < end:
        stop = _slice_end(data, at, end, newline)
        if stop is None:  # refused as the slices are read: only counted here
            while at < end:
                stop = min(end, at + CHUNK_BYTES)
                rows += bytes(data[at:stop]).count(newline)
                release(stop)
                at = stop
            break
        raw = bytes(data[at:stop])
        eol = (b"\r\n" if b"\r" in raw else b"\n") if newline == b"\n" else b"\r"
        shaped = _shaped_rows(raw, sep, eol, decimal_comma) if sep is not None else None
        rows += raw.count(newline) if shaped is None else shaped - (stop == end and not
                                                                   raw.endswith(eol))
        plan.append((stop, None if shaped is None else eol))
        release(stop)
        at = stop
    return rows + (bytes(data[end - 1:end]) != newline), plan


# The characters of a number as float() and the exact reader both read it, bar the decimal mark.
_NUMBER_BYTES = b"0123456789+-eE"
# With decimal commas, delimiters and line ends become commas and decimal commas points.
_AS_JSON_COMMA = {sep: bytes.maketrans(b"\r\n" + sep + b",", b",,,.") for sep in (b"\t", b";")}
# The C scanner converts a JSON number with a fraction or an exponent by PyFloat_FromString on
# its characters, float() itself; the others go to parse_int, float too (so "-0" stays -0.0).
_JSON = json.JSONDecoder(parse_int=float)


def fast_columns(raw: bytes, delimiter: str,
                 decimal_comma: bool) -> tuple[list[float], list[float]] | None:
    """The times and values of the rows in ``raw``, exactly what the exact reader gives; None
    when it would refuse a row, or might: it is then run to name the line.

    A trace is bound by ``float()`` over its cells, so the rest is done on the whole slice at
    once: the shape (``_shaped_rows``), then the numbers (``_numbers``).
    """
    if delimiter not in (",", "\t", ";") or not raw:
        return None  # whitespace-separated rows keep the exact reader's splitting
    if b"\r" in raw:
        # CR LF, CR and LF all end a line for the exact reader.
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    sep = delimiter.encode("ascii")
    if _shaped_rows(raw, sep, b"\n", decimal_comma) is None:
        return None
    return _numbers(raw, sep, b"\n", decimal_comma)


def _shaped_rows(raw: bytes, sep: bytes, eol: bytes, decimal_comma: bool) -> int | None:
    """The lines of ``raw`` if each is number characters, one ``sep`` and ``eol`` (the last
    one's may be missing): one ``translate`` deleting the number characters must leave exactly
    that, which rules out blank lines, stray spaces, quotes and letters, and makes every line
    two cells and the cells, comma-joined, a JSON array of numbers only. None otherwise."""
    shape = raw.translate(None, _NUMBER_BYTES + (b"," if decimal_comma else b"."))
    if not raw.endswith(eol):
        shape += eol  # the last line's, missing
    rows = len(shape) // (len(sep) + len(eol))
    return rows if shape == (sep + eol) * rows else None


def _numbers(raw: bytes, sep: bytes, eol: bytes,
             decimal_comma: bool) -> tuple[list[float], list[float]] | None:
    """The times and values of the rows in ``raw``, whose shape ``_shaped_rows`` vouched for
    (``sep`` and ``eol`` being what it was given); None if a cell is not a number.

    The cells, comma-joined, are read by the JSON decoder, with ``float()`` and without a
    Python object per cell in between. A number JSON spells otherwise (``+1``, ``1.``, ``.5``,
    ``007``) sends the slice to ``float()`` over the split cells, which reads each cell as the
    exact reader would (same characters, same function) and refuses what its pattern refuses.
    """
    if not raw.endswith(eol):
        raw += eol
    # The cells, comma-joined (a replace costs less than a translate).
    if decimal_comma:
        cells = raw.translate(_AS_JSON_COMMA[sep], b"\n" if eol == b"\r\n" else b"")
    else:
        # A CR is only ever before an LF here: two one-byte replaces, much faster than one of
        # CR LF.
        cells = raw.replace(b"\n", b"").replace(b"\r", b",") if eol == b"\r\n" else \
            raw.replace(eol, b",")
        if sep != b",":
            cells = cells.replace(sep, b",")
    del raw
    try:
        numbers = _JSON.decode(f"[{cells[:-1].decode('ascii')}]")
    except ValueError:
        try:
            numbers = list(map(float, cells.split(b",")[:-1]))
        except ValueError:
            return None
    del cells
    # float() of a number's characters is never NaN, so a finite sum means no infinity (an
    # exponent too big); only when the sum overflows are the numbers looked at.
    if not math.isfinite(sum(numbers)) and (math.inf in numbers or -math.inf in numbers):
        return None
    return numbers[0::2], numbers[1::2]


@lru_cache
def _ascii_transparent(codec: str) -> bool:
    """Whether ``codec`` writes digits, signs, marks and line ends as ASCII does: the fast
    reader looks at bytes (not so for UTF-16 or EBCDIC code pages set in the settings)."""
    probe = "0123456789+-eE.,;\t\r\n"
    try:
        return probe.encode(codec) == probe.encode("ascii") and \
            probe.encode("ascii").decode(codec) == probe
    except (LookupError, UnicodeError):
        return False


def _releaser(data: object) -> Callable[[int], None]:
    """For an mmap, a function handing back to the system the pages before an offset (they
    are read again from the file if touched, so the content is unchanged): a trace of
    hundreds of megabytes then never holds more than a slice of them in memory."""
    if not isinstance(data, mmap.mmap) or not hasattr(mmap, "MADV_DONTNEED"):
        return lambda _: None

    def release(upto: int) -> None:
        pages = upto - upto % mmap.PAGESIZE
        if pages:
            data.madvise(mmap.MADV_DONTNEED, 0, pages)
    return release


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


def _check_times(times: list[float] | array, previous: float, filename: str,
                 first_line: int) -> float:
    """The last time, after checking that none goes back (from ``previous`` on)."""
    # Sorting a list already in order is one pass of float comparisons, fewer objects made
    # than comparing the array's items pairwise; equal only if no time goes back.
    listed = times.tolist() if isinstance(times, array) else times
    if listed and listed[0] >= previous and listed == sorted(listed):
        return listed[-1]
    for i, t in enumerate(times):
        if t < previous:
            raise ParseError(f"time goes backwards ({t} after {previous})", line=first_line + i,
                             filename=filename)
        previous = t
    return previous


def _signal_from_name(filename: str) -> tuple[str, str | None]:
    match = _SIGNAL_IN_NAME.search(filename)
    if not match:
        return "trace", None
    detector = f"{match.group(1).upper()}{match.group(2)}"
    return f"{detector} {match.group(3)}".strip(), detector


def _unit(label: str) -> str | None:
    match = re.search(r"[\[(]\s*([^\])]+?)\s*[\])]", label)
    return match.group(1) if match else None
