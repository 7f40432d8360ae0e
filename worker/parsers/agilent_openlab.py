"""Agilent OpenLab CDS peak-table CSV, in its two layouts.

"Report": method metadata lines, then the table ``Height,Area,Area%,Peak Begin Time,Peak End
Time,RT [min]``, the peak rows and a ``Sum,<total area>`` row. "PeakData": the table first, then
``Key:,Value`` metadata lines such as ``Sample name:,P-0111_Inj_1``. In both, the ``Sum`` row is
what proves the table is complete: without it, or when it disagrees with the rows, the file is
rejected. Semicolon-delimited exports (European locales) use decimal commas.
"""

from __future__ import annotations

import codecs
import csv
import math
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import islice
from operator import attrgetter
from typing import NamedTuple

from pydantic import TypeAdapter, ValidationError

from worker.parsers.base import (
    CERTAIN,
    MIN_CONFIDENCE,
    NOT_MINE,
    Metadata,
    ParsedFile,
    ParseError,
    Peak,
    too_many,
    validated,
)
from worker.parsers.options import ParserOptions
from worker.parsers.text import decode, parse_number

name = "agilent-openlab-csv"
version = "1.0"
display_name = "Agilent OpenLab CDS peak table (Report / PeakData CSV)"
extensions = (".csv",)

# Header cell (lower-cased, spaces squeezed) -> Peak field.
COLUMNS = {
    "height": "height",
    "area": "area",
    "area%": "area_pct",
    "area %": "area_pct",
    "peak begin time": "begin_min",
    "peak end time": "end_min",
    "rt [min]": "rt_min",
    "rt": "rt_min",
    "retention time": "rt_min",
    "width": "width_min",
    "width [min]": "width_min",
    "name": "name",
    "compound": "name",
    "type": "peak_type",
}
REQUIRED = ("rt_min", "area")
TEXT_FIELDS = ("name", "peak_type")

# Metadata keys (lower-case, without the colon) that map onto ParsedFile fields.
FIELD_KEYS = {
    "sample name": "sample_name",
    "acquisition method": "method",
    "instrument": "instrument",
    "instrument name": "instrument",
    "operator": "operator",
    "acquired by": "operator",
    "injection volume": "injection_volume",
    "vial": "vial",
    "sample position": "vial",
    "dilution factor": "dilution_factor",
    "dilution": "dilution_factor",
}


def _norm(cell: str) -> str:
    # " ".join(split()) squeezes the same (Unicode) blanks as re.sub(r"\s+", " ") on a stripped
    # cell, several times faster.
    return " ".join(cell.strip().strip('"').split()).lower()


class _Fields(tuple[str | None, ...]):
    """A header's Peak fields, one per column (None: a column not read), with what ``sniff``
    and ``parse`` work out from them, once per header object: ``_plain_header`` hands the
    files of a sequence the same one for the header they repeat."""

    @cached_property
    def missing(self) -> list[str]:
        return _missing(self)

    @cached_property
    def score(self) -> int:
        if self.missing:
            return MIN_CONFIDENCE + 5  # ours, with a column missing: parse() says which
        if "area_pct" in self and "height" in self:
            return _FULL  # the full OpenLab header
        return MIN_CONFIDENCE + 20  # a peak-table header, as other software writes too

    @cached_property
    def keys(self) -> tuple[str, ...] | None:
        """The Peak fields of a row of ``_quick`` (then its number and line), when every
        column is a numeric field of its own, Area% among them; else None."""
        if not _plan(self)[1] or "area_pct" not in self:
            return None
        return (*self, "number", "line")  # type: ignore[arg-type]

    @cached_property
    def reader(self) -> Callable[[list[str], int], list[dict[str, object]]] | None:
        """``_rows_reader`` of ``keys``, when ``_quick`` can read the rows."""
        return None if self.keys is None else _rows_reader(self.keys)


def _header_fields(cells: list[str]) -> _Fields | None:
    """Map a header row to Peak fields, or None when the row is not a peak-table header.

    Three known column names, one of them RT or Area, make a header; one that lacks a required
    column is still recognised, so the file is rejected for that (``_missing``) and not as an
    unknown format.
    """
    fields = _Fields(_column(c) for c in cells)
    known = [f for f in fields if f]
    if len(known) < 3 or not any(req in fields for req in REQUIRED):
        return None
    return fields


def _header_of(line: str, delimiter: str, number: int | None = None) -> _Fields | None:
    """``_header_fields`` of the cells of ``line``; remembered for short lines without quotes
    (those split without error), since every file of a sequence repeats its header."""
    if len(line) <= 256 and '"' not in line:
        return _plain_header(line, delimiter)
    return _header_fields(_split(line, delimiter, number))


@lru_cache(maxsize=1024)
def _plain_header(line: str, delimiter: str) -> _Fields | None:
    return _header_fields(line.split(delimiter) if line else [])


def _column(cell: str) -> str | None:
    """``COLUMNS.get(_norm(cell))``, remembered for short cells: the cells of headers and
    preambles repeat from file to file (long ones are not kept, so the cache stays small)."""
    return _short_column(cell) if len(cell) <= 64 else COLUMNS.get(_norm(cell))


@lru_cache(maxsize=4096)
def _short_column(cell: str) -> str | None:
    return COLUMNS.get(_norm(cell))


def _missing(fields: tuple[str | None, ...]) -> list[str]:
    return [field_label(req) for req in REQUIRED if req not in fields]


def _split(line: str, delimiter: str, number: int | None = None) -> list[str]:
    if '"' not in line:
        # Without a quote the csv module splits exactly at the delimiters, only slower.
        return line.split(delimiter) if line else []
    try:
        return next(csv.reader([line], delimiter=delimiter))
    except csv.Error as exc:  # e.g. a cell longer than the csv module's field limit
        raise ParseError(f"unreadable CSV row: {exc}", line=number) from exc


# The lines that could be a peak-table header: one naming RT or Area (found in one scan of the
# text rather than a test of every line, most of the parser's time saved in a burst).
_KEYWORDS = (b"area", b"rt", b"retention")
_WINDOW = 1 << 20


def _candidates(text: str) -> Iterator[tuple[int, int, int, str]]:
    """(0-based index, start, end, line) of each line of ``text`` (LF-only line ends) that
    could be a header, in order."""
    if "r" not in text and "R" not in text:
        return  # every keyword holds an r, and only R lower-cases to r below
    index, window = 0, 0
    while window < len(text):
        stop = len(text) if window + _WINDOW >= len(text) else \
            text.find("\n", window + _WINDOW) + 1 or len(text)
        # One byte per character (Latin-1, "?" for the rest), lower-cased in C, a window at a
        # time: str.find on it is many times faster than a case-blind regex over the text.
        probe = text[window:stop].encode("latin-1", "replace").lower()
        starts: set[int] = set()
        for keyword in _KEYWORDS:
            at = probe.find(keyword)
            while at >= 0:
                starts.add(probe.rfind(b"\n", 0, at) + 1)
                end = probe.find(b"\n", at)
                if end < 0:
                    break
                at = probe.find(keyword, end)
        previous = 0
        for start in sorted(starts):
            index += probe.count(b"\n", previous, start)
            previous = start
            end = probe.find(b"\n", start)
            end = len(probe) if end < 0 else end
            yield index, window + start, window + end, text[window + start:window + end]
        index += probe.count(b"\n", previous)
        window = stop


def _header_in(line: str, delimiter: str) -> _Fields | None:
    """The header fields of ``line`` while sniffing, where an unreadable line is no header."""
    # A header has three known cells, so at least two delimiters (CSV splits only at them).
    if line.count(delimiter) < 2:
        return None
    try:
        return _header_of(line, delimiter)
    except ParseError:
        return None


class _Scan(NamedTuple):  # a tuple: built for every file, faster than a frozen dataclass
    """What ``sniff`` and ``parse`` both read first: the text with LF line ends, its
    delimiter, and every line that could be the header (``_candidates``)."""

    lf: str
    delimiter: str
    candidates: Iterable[tuple[int, int, int, str]]
    # The remembered preamble ``lf`` starts with ("" if none): the same text as ``lf``'s
    # slice, whose hash is already known where the preamble's reading is looked up.
    preamble: str = ""
    # How many of the first candidates are known to read as no header with either delimiter,
    # without error (those of a remembered preamble): sniff and parse start after them.
    skip: int = 0


class _Found:
    """The header candidates of a text too big to remember: found again at each reading, so
    that a big file's candidate lines are never all held at once."""

    def __init__(self, lf: str) -> None:
        self.lf = lf

    def __iter__(self) -> Iterator[tuple[int, int, int, str]]:
        return _candidates(self.lf)


# Up to this length the last scan is remembered, by the identity of the decoded text:
# ``text.decode`` hands the sniffer and then the parser the same str for the same bytes, so the
# header is looked for once per file. A str never changes, and the one kept alive here cannot
# be mistaken for another.
_REMEMBERED_CHARS = 65536
_last_scan: tuple[str, _Scan] | None = None


def _scanned(text: str) -> _Scan:
    global _last_scan
    last = _last_scan  # one read: another thread may replace it meanwhile
    if last is not None and last[0] is text:
        return last[1]
    lf = _lf(text)
    small = len(text) <= _REMEMBERED_CHARS
    preamble, skip = "", 0
    if small:
        candidates, has_semicolon, preamble, skip = _small_candidates(lf)
    else:
        candidates, has_semicolon = _Found(lf), ";" in lf
    # ``;`` when a line is a header split at semicolons.
    semicolon = has_semicolon and any(_header_in(line, ";") is not None
                                      for _, _, _, line in islice(candidates, skip, None))
    scan = _Scan(lf, ";" if semicolon else ",", candidates, preamble, skip)
    if small:
        _last_scan = (text, scan)
    return scan


@dataclass(frozen=True)
class _Prefix:
    """What ``_candidates`` found in the lines before a file's first header, kept for the
    next files that start with the same lines (a sequence's injections share their method
    preamble, character for character)."""

    lines: int
    candidates: tuple[tuple[int, int, int, str], ...]
    semicolon: bool
    # Whether every one of ``candidates`` reads as no header with either delimiter, without
    # error (a quoted line the csv module refuses is an error in ``parse``).
    quiet: bool
    # The header line that followed, with its line end: a candidate wherever it follows the
    # preamble again (the files of a sequence repeat it too).
    header: str


# Preambles remembered by their text, oldest first; a file is compared with each (a text
# comparison that stops at the first differing character), the one a file last started with
# first: files come in sequences, and a sequence's preamble may be the newest of many.
_PREFIXES = 16
_prefixes: dict[str, _Prefix] = {}
_prefixes_lock = threading.Lock()
_last_prefix: tuple[str, _Prefix] | None = None


def _small_candidates(lf: str
                      ) -> tuple[tuple[tuple[int, int, int, str], ...], bool, str, int]:
    """``tuple(_candidates(lf))``, whether ``lf`` holds a semicolon, the remembered preamble
    it starts with (or "") and how many of the candidates are known to be no header (``_Scan.
    skip``), reading only what follows that preamble: candidates are found line by line, so
    those of the preamble are those of any text that starts with it."""
    global _last_prefix
    prefix = _last_prefix  # one read: another thread may replace it meanwhile
    if prefix is None or not lf.startswith(prefix[0]):
        prefix = next((item for item in tuple(_prefixes.items()) if lf.startswith(item[0])),
                      None)
    if prefix is not None:
        _last_prefix = prefix
        text, known = prefix
        size, lines, found = len(text), known.lines, known.candidates
        if lf.startswith(known.header, size):
            found += ((lines, size, size + len(known.header) - 1, known.header[:-1]),)
            size, lines = size + len(known.header), lines + 1
        rest = tuple((i + lines, start + size, end + size, line)
                     for i, start, end, line in _candidates(lf[size:]))
        return (found + rest, known.semicolon or ";" in lf[len(text):], text,
                len(known.candidates) if known.quiet else 0)
    candidates = tuple(_candidates(lf))
    _remember_prefix(lf, candidates)
    return candidates, ";" in lf, "", 0


def _remember_prefix(lf: str, candidates: tuple[tuple[int, int, int, str], ...]) -> None:
    """Remember the lines before the first line that reads as a header (with either
    delimiter): what the next file of the same sequence starts with."""
    global _last_prefix
    for index, start, _, line in candidates:
        if _header_in(line, ",") is not None or _header_in(line, ";") is not None:
            if start == 0:
                return  # nothing before it (a PeakData file)
            text = lf[:start]
            before = tuple(c for c in candidates if c[1] < start)
            known = _Prefix(index, before, ";" in text, all(_quiet(c[3]) for c in before),
                            line + "\n")
            with _prefixes_lock:
                if len(_prefixes) >= _PREFIXES:
                    del _prefixes[next(iter(_prefixes))]
                _prefixes[text] = known
            _last_prefix = (text, known)
            return


def _quiet(line: str) -> bool:
    """Whether ``line`` reads as no header with either delimiter, without error."""
    try:
        return _header_of(line, ",") is None and _header_of(line, ";") is None
    except ParseError:
        return False


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def _lf(text: str) -> str:
    """``text`` with CR LF and lone CR line ends made LF, so ``split("\\n")`` gives the lines of
    ``split_lines``."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


_SNIFF_BYTES = 65536
_SNIFF_LINES = 400
_FULL = 90
# The first key of a Report, as OpenLab writes it.
_REPORT_START = "Acquisition Method:"


def sniff(data: bytes, filename: str, options: ParserOptions) -> int:
    try:
        text, encoding = decode(data[:_SNIFF_BYTES], configured=options.encoding_for(filename),
                                default=options.default_encoding)
    except (ParseError, UnicodeDecodeError):
        return NOT_MINE
    scan = _scanned(text)
    for index, _, _, line in islice(scan.candidates, scan.skip, None):
        if index >= _SNIFF_LINES:
            break
        fields = _header_in(line, scan.delimiter)
        if fields is not None:
            score = fields.score
            if score == _FULL and _signed(data, scan, encoding):
                return CERTAIN
            return score
    return NOT_MINE


def _signed(data: bytes, scan: _Scan, encoding: str) -> bool:
    """Whether a file whose full header was found also starts as an OpenLab Report does, and
    its head shows no landmark of a format sniffed after this one that could outscore the full
    header: then the file is this format's alone (CERTAIN), and the registry need not ask the
    sniffers after this one (README.md, confidence scale).

    The landmarks that let a later format score over the full header must start the file
    (Shimadzu's ``[Header]``, Empower's quoted first row, EZChrom's ``Version:``, a netCDF
    signature), except Chromeleon's ``… Information:`` block titles, which the head must not
    hold; UTF-16, which Chromeleon reads whole, is left out."""
    if not scan.lf.startswith(_REPORT_START) or data.startswith(
            (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    preamble = scan.preamble
    if preamble and len(data) <= _SNIFF_BYTES and encoding in _ASCII_SAFE:
        # In UTF-8 an ASCII run is in the bytes where it is in the text (line ends aside): the
        # remembered preamble answers for its lines, once, and only the rest is looked through.
        return not _informs(preamble) and scan.lf.find(
            _INFORMATION, max(0, len(preamble) - len(_INFORMATION) + 1)) < 0
    return data.find(b"Information:") < 0  # not ``in``: see chemstation_xml.sniff


_INFORMATION = "Information:"
_ASCII_SAFE = ("utf-8", "utf-8-sig")


@lru_cache(maxsize=32)
def _informs(preamble: str) -> bool:
    return preamble.find(_INFORMATION) >= 0


def parse(data: bytes, filename: str, options: ParserOptions) -> ParsedFile:
    text, encoding = decode(data, filename, configured=options.encoding_for(filename),
                            default=options.default_encoding)
    scan = _scanned(text)
    lf = scan.lf
    ends_with_break = text.endswith(("\n", "\r"))
    del text  # a big file's text is held once (``lf`` may be it)
    delimiter = scan.delimiter
    decimal_comma = delimiter == ";"

    header_at = None
    fields = _Fields()
    header_start = header_end = 0
    for i, start, end, line in islice(scan.candidates, scan.skip, None):
        found = _header_of(line, delimiter, i + 1)
        if found is not None:
            if header_at is not None:
                raise ParseError(f"a second peak-table header (first at line {header_at + 1})",
                                 line=i + 1, filename=filename)
            missing = found.missing
            if missing:
                raise ParseError(f"peak-table header has no {' or '.join(missing)} column",
                                 line=i + 1, filename=filename)
            header_at, fields, header_start, header_end = i, found, start, end
    if header_at is None:
        raise ParseError("no peak table header with RT and Area columns", filename=filename)

    rows: list[list[str]] = []
    sum_at = None
    total = None
    i, at = header_at + 1, header_end + 1
    most = options.max_peaks_per_table
    if not decimal_comma:
        quick = _quick(lf, scan, encoding, header_start, header_at, at, fields, most)
        if quick is not None:
            parsed, total, decimals, sum_line = quick
            _check_sum(parsed.signals[0].peaks or [], total, decimals, sum_line, filename)
            return parsed
    plain = _plain_rows(lf, at, delimiter, most)
    if plain is not None:
        rows, at = plain
        i += len(rows)
        # The line at ``at`` starts "Sum" and the delimiter: the Sum row the loop below
        # would stop at.
        end = lf.find("\n", at)
        cells = _split(lf[at:] if end < 0 else lf[at:end], delimiter, i + 1)
        sum_at = i
        sum_cell = cells[1] if len(cells) > 1 else ""
        total = parse_number(sum_cell, decimal_comma=decimal_comma, what="Sum", line=i + 1,
                             filename=filename)
    # Lines are cut out one at a time, never all at once: a file of a million rows is
    # rejected by the peaks limit before its rows cost memory.
    while sum_at is None and at < len(lf):  # while i < the number of lines
        end = lf.find("\n", at)
        end = len(lf) if end < 0 else end
        line = lf[at:end]
        cells = _split(line, delimiter, i + 1) if line.strip() else []
        if not cells or not (cells[0].strip() or any(c.strip() for c in cells)):
            break
        # Only a cell holding an S can read "sum" (no other character lower-cases to s).
        if ("s" in cells[0] or "S" in cells[0]) and _norm(cells[0]) == "sum":
            sum_at = i
            sum_cell = cells[1] if len(cells) > 1 else ""
            total = parse_number(sum_cell, decimal_comma=decimal_comma, what="Sum", line=i + 1,
                                 filename=filename)
            break
        rows.append(cells)
        if len(rows) > most:
            raise too_many("peaks in the table", most, "max_peaks_per_table", line=i + 1,
                           filename=filename)
        i, at = i + 1, end + 1
    first = header_at + 2
    cut = header_at > 0 and not ends_with_break and sum_at == _line_count(lf) - 1
    peaks = (None if decimal_comma else _fast_peaks(rows, fields, first)) or [
        _peak(cells, fields, n, line, decimal_comma, filename)
        for n, (line, cells) in enumerate(enumerate(rows, start=first), start=1)]
    if sum_at is None:
        count = _line_count(lf)
        where = i + 1 if i < count else count
        raise ParseError("peak table ends without its Sum row (file cut off or incomplete)",
                         line=where, filename=filename)
    if cut:
        # A Report's Sum row ends with its line end (and a blank line): a file that stops
        # inside it is a part still being written, whose total may be cut short.
        raise ParseError("the Sum row has no line end: the file is cut off or still being "
                         "written", line=sum_at + 1, filename=filename)
    if not peaks:
        raise ParseError("peak table has zero peaks", line=sum_at + 1, filename=filename)
    assert total is not None
    _check_sum(peaks, total, _decimals(sum_cell), sum_at + 1, filename)
    peaks = _with_area_pct(peaks, total)
    document = _document(lf, scan, header_start, header_at, at, encoding, peaks, total)
    with validated("invalid metadata", filename=filename):
        return ParsedFile.model_validate(document)


def _document(lf: str, scan: _Scan, header_start: int, header_at: int, at: int,
              encoding: str, peaks: list[Peak] | list[dict[str, object]],
              total: float) -> dict[str, object]:
    """What ``ParsedFile`` is validated from: the peaks, the preamble's metadata, then that of
    the lines after the Sum row (PeakData's ``Key:,Value`` lines, from ``at``); the first value
    of a key wins."""
    delimiter = scan.delimiter
    before = scan.preamble if header_start == len(scan.preamble) else lf[:header_start]
    layout = "report" if header_at > 0 else "peakdata"
    after = lf.find("\n", at)
    if after >= 0 and lf.find(":", after) >= 0:
        metadata, wavelength = _preamble(before, delimiter)
        metadata = dict(metadata)
        for key, value in _metadata(_lines(lf[after + 1:]), delimiter).items():
            metadata.setdefault(key, value)
        head, signal = _parts(metadata, wavelength, layout, encoding)
    elif len(before) <= _REMEMBERED_CHARS:
        head, signal = _remembered_head(before, delimiter, layout, encoding)
    else:
        head, signal = _head(before, delimiter, layout, encoding)
    return {**head, "signals": [{**signal, "peaks": peaks, "total_area": total}]}


def _head(before: str, delimiter: str, layout: str, encoding: str
          ) -> tuple[dict[str, object], dict[str, object]]:
    metadata, wavelength = _preamble(before, delimiter)
    return _parts(Metadata.of(metadata), wavelength, layout, encoding)


def _parts(metadata: dict[str, str], wavelength: float | None, layout: str, encoding: str
           ) -> tuple[dict[str, object], dict[str, object]]:
    """The document's fields but its signals, and its signal's but the peaks and total (never
    to be changed: what is remembered is shared)."""
    head = {"format": f"{name}/{layout}", "parser_version": version, "encoding": encoding,
            "metadata": metadata, **_fields(metadata)}
    signal = {"name": metadata.get("signal", "Signal A"), "detector": "DAD",
              "wavelength_nm": wavelength}
    return head, signal


# The files of a sequence share their preamble, so their documents share all but the peaks.
_remembered_head = lru_cache(maxsize=32)(_head)


def _quick(lf: str, scan: _Scan, encoding: str, header_start: int, header_at: int, at: int,
           fields: _Fields, most: int
           ) -> tuple[ParsedFile, float, int, int] | None:
    """The file, its total, the decimals the total is printed with and the Sum row's line,
    when the rows from ``at`` up to the first ``Sum`` row are a plain dot-decimal table (every
    column a number of its own, Area% among them, nothing but number characters in a cell,
    each row as many cells as the header) that validates whole with its metadata, and the Sum
    row is complete: the most common file, read in the fewest steps. Else None, and the row
    loop of ``parse`` reads the file (and says what is wrong): nothing accepted here is
    refused or read otherwise there."""
    keys, rows = fields.keys, fields.reader
    stop = lf.find("\nSum,", at - 1)
    if keys is None or rows is None or stop < at:
        return None
    block = lf[at:stop]
    if block.encode("ascii", "replace").translate(None, _PLAIN_BLOCK_TEXT):
        return None  # a character other than those of numbers, commas and line breaks
    lines = block.split("\n")
    # As many cells in all as the header's width in each row: with no row short of it (an
    # IndexError below), no row is longer either.
    if len(lines) > most or block.count(",") != (len(fields) - 1) * len(lines):
        return None
    end = lf.find("\n", stop + 1)
    if end < 0 and header_at > 0:
        return None  # a Report's Sum row without its line end: cut off (``parse`` says so)
    sum_cells = lf[stop + 1:end if end >= 0 else len(lf)].split(",")
    sum_cell = sum_cells[1] if len(sum_cells) > 1 else ""
    if not _PLAIN_TOTAL.fullmatch(sum_cell):
        return None
    shift = header_at + 1  # the 1-based line of the row before the first
    total = float(sum_cell)
    try:
        peaks = rows(lines, shift)
        document = _document(lf, scan, header_start, header_at, stop + 1, encoding, peaks, total)
        parsed: ParsedFile = _VALIDATE(document)
    except (IndexError, ValueError, ParseError, ValidationError):
        return None
    # ``_decimals`` of a total of digits and at most one point, without a regex.
    point = sum_cell.find(".")
    decimals = len(sum_cell) - point - 1 if point >= 0 else 0
    return parsed, total, decimals, header_at + len(lines) + 2


@lru_cache(maxsize=256)
def _rows_reader(keys: tuple[str, ...]) -> Callable[[list[str], int], list[dict[str, object]]]:
    """The function making the Peak fields (``_Fields.keys``: the header's, then number and
    line) of rows of cells split at commas, given the 1-based line of the row before the first:
    a list display compiled for the header, as dataclasses compile their ``__init__``, a few
    times faster than ``dict(zip(...))`` per row. The names are Peak fields (``COLUMNS``'
    values), never text of the file. IndexError for a row of fewer cells."""
    cells = ", ".join(f"{key!r}: cells[{i}]" for i, key in enumerate(keys[:-2]))
    reader: Callable[[list[str], int], list[dict[str, object]]] = eval(
        f"lambda lines, shift: [{{{cells}, 'number': number, 'line': number + shift}} "
        "for number, line in enumerate(lines, start=1) for cells in [line.split(',')]]")
    return reader


# A total ``parse_number`` and ``float`` read alike (too few digits to overflow to inf).
_PLAIN_TOTAL = re.compile(r"[0-9]{1,15}(?:\.[0-9]{0,15})?")
# ``ParsedFile.model_validate`` without its keyword arguments: the same validator.
_VALIDATE = ParsedFile.__pydantic_validator__.validate_python


def _plain_rows(lf: str, at: int, delimiter: str, most: int
                ) -> tuple[list[list[str]], int] | None:
    """The cells of the rows from ``at`` up to the first ``Sum`` row after it, and where that
    row starts, when the row loop of ``parse`` would take every one of them as a peak row:
    each holds only number characters, blanks and delimiters (so no quote, and no first cell
    reading "sum"), with a cell that is not blank; they are at most ``most``. Else None,
    and the loop reads them line by line (and says what is wrong)."""
    stop = lf.find("\nSum" + delimiter, at - 1)
    if stop < at or lf.count("\n", at, stop) >= most:
        return None
    block = lf[at:stop]
    raw = block.encode("ascii", "replace")
    if raw.translate(None, _PLAIN_ROW_TEXT):
        return None
    # Without its blanks and delimiters, a line of nothing else is an empty line.
    ink = raw.translate(None, b" \t" + delimiter.encode())
    if not ink or b"\n\n" in ink or ink.startswith(b"\n") or ink.endswith(b"\n"):
        return None
    return [line.split(delimiter) for line in block.split("\n")], stop + 1


def _line_count(lf: str) -> int:
    return lf.count("\n") + (0 if lf.endswith("\n") or not lf else 1)


def _preamble(text: str, delimiter: str) -> tuple[dict[str, str], float | None]:
    """The metadata and wavelength of the lines before the header (never to be changed: what is
    remembered is shared; the model copies what it is given)."""
    if len(text) <= _REMEMBERED_CHARS:
        return _remembered_preamble(text, delimiter)
    return _read_preamble(text, delimiter)


def _read_preamble(text: str, delimiter: str) -> tuple[dict[str, str], float | None]:
    lines = _lines(text)
    return _metadata(lines, delimiter), _wavelength(lines, delimiter)


def _fields(metadata: dict[str, str]) -> dict[str, str]:
    """The ParsedFile fields that ``metadata``'s keys give (FIELD_KEYS)."""
    return {field: metadata[key] for key, field in FIELD_KEYS.items() if key in metadata}


# The injections of a sequence print the same method preamble, character for character.
_remembered_preamble = lru_cache(maxsize=32)(_read_preamble)


# What the numeric cells of a dot-decimal table may hold for ``float`` to read them exactly as
# ``parse_number`` does: with only these characters, both accept and refuse the same cells.
_PLAIN_NUMBER_TEXT = b"0123456789.+-eE \t"
# What the rows ``_plain_rows`` takes may hold (either delimiter, and their line breaks).
_PLAIN_ROW_TEXT = _PLAIN_NUMBER_TEXT + b",;\n"
# What the rows ``_quick`` takes may hold: cells of number characters, commas, line breaks.
_PLAIN_BLOCK_TEXT = _PLAIN_NUMBER_TEXT + b",\n"


def _fast_peaks(rows: list[list[str]], fields: tuple[str | None, ...],
                first: int) -> list[Peak] | None:
    """The peaks of a plain table (every row as many cells as the header, numbers only, no
    quotes), read with ``float`` in one pass; None for anything else, which ``_peak`` then reads
    row by row and rejects with the row's line and reason."""
    numeric, distinct = _plan(fields)
    if numeric is None or not _plain(rows, fields):
        return None  # name or type columns, other characters: the exact reader
    try:
        if distinct and not any("" in row for row in rows):
            values = _cells(rows, fields, first)
        else:
            values = [{"number": n, "line": line,
                       **{f: float(row[i]) for i, f in numeric if row[i].strip()}}
                      for n, (line, row) in enumerate(enumerate(rows, start=first), start=1)]
        # One validation of the whole table: the same checks as a Peak per row, in one call.
        peaks: list[Peak] = _PEAKS.validate_python(values)
    except (ValueError, ValidationError):  # an empty required cell, a bad number, a model check
        return None
    return peaks


_PEAKS = TypeAdapter(list[Peak])


def _plain(rows: list[list[str]], fields: tuple[str | None, ...]) -> bool:
    """Every row as many cells as the header, and nothing in them but number characters."""
    width = len(fields)
    return not (any(len(row) != width for row in rows) or "".join(map("".join, rows)).encode(
        "ascii", "replace").translate(None, _PLAIN_NUMBER_TEXT))


def _cells(rows: list[list[str]], fields: tuple[str | None, ...],
           first: int) -> list[dict[str, object]]:
    """Rows of as many cells as ``fields``, as Peak fields with their number and line."""
    cells = []
    for number, row in enumerate(rows, start=1):
        peak: dict[str, object] = dict(zip(fields, row, strict=True))  # type: ignore[arg-type]
        peak["number"] = number
        peak["line"] = first + number - 1
        cells.append(peak)
    return cells


@lru_cache(maxsize=256)
def _plan(fields: tuple[str | None, ...]) -> tuple[tuple[tuple[int, str], ...] | None, bool]:
    """For a header's fields: the (index, field) of its numeric columns, None when it has text
    columns; and whether every column is a numeric field of its own. Headers repeat."""
    numeric = tuple((i, f) for i, f in enumerate(fields) if f is not None and f not in TEXT_FIELDS)
    if len(numeric) != sum(f is not None for f in fields):
        return None, False
    return numeric, None not in fields and len(set(fields)) == len(fields)


def _peak(cells: list[str], fields: tuple[str | None, ...], number: int, line: int,
          decimal_comma: bool, filename: str) -> Peak:
    if len(cells) < len(fields) or any(c.strip() for c in cells[len(fields):]):
        raise ParseError(f"row has {len(cells)} cells, the header has {len(fields)}",
                         line=line, filename=filename)
    values: dict[str, object] = {}
    for field, cell in zip(fields, cells, strict=False):
        if field is None:
            continue
        if field in TEXT_FIELDS:
            values[field] = cell.strip() or None
        elif cell.strip() or field in REQUIRED:
            values[field] = parse_number(cell, decimal_comma=decimal_comma, what=field_label(field),
                                         line=line, filename=filename)
    with validated("invalid peak row", line=line, filename=filename, label=field_label):
        return Peak(number=number, line=line, **values)  # type: ignore[arg-type]


def field_label(field: str) -> str:
    labels = {"rt_min": "RT", "area": "Area", "area_pct": "Area%", "height": "Height",
              "begin_min": "Peak Begin Time", "end_min": "Peak End Time", "width_min": "Width"}
    return labels.get(field, field)


_FRACTION = re.compile(r"[.,](\d+)")


def _decimals(sum_cell: str) -> int:
    """The decimals the Sum cell is printed with."""
    fraction = _FRACTION.search(sum_cell)
    return len(fraction.group(1)) if fraction else 0


_AREA = attrgetter("area")


def _check_sum(peaks: list[Peak], total: float, decimals: int, line: int, filename: str) -> None:
    """The printed Sum must equal the rows' areas to the precision it is printed with
    (``decimals``)."""
    computed = math.fsum(map(_AREA, peaks))
    tolerance = 0.5 * 10 ** -decimals * (len(peaks) + 1) + 1e-9 * abs(total)
    if abs(computed - total) > tolerance:
        raise ParseError(f"Sum {total} disagrees with the rows' total area {computed:.{decimals}f}",
                         line=line, filename=filename)


def _with_area_pct(peaks: list[Peak], total: float) -> list[Peak]:
    if all(p.area_pct is not None for p in peaks) or total <= 0:
        return peaks
    return [p if p.area_pct is not None else p.model_copy(update={"area_pct": p.area / total * 100})
            for p in peaks]


def _metadata(lines: list[str], delimiter: str) -> dict[str, str]:
    """``Key:,Value[,Key:,Value…]`` pairs; lines of other shapes (section titles, tables) are
    skipped."""
    metadata: dict[str, str] = {}
    for line in lines:
        if ":" in line:  # else no key in it
            for key, value in (_pairs(line, delimiter) if len(line) <= 256
                               else _pairs.__wrapped__(line, delimiter)):
                metadata.setdefault(key, value)
    return metadata


@lru_cache(maxsize=4096)
def _pairs(line: str, delimiter: str) -> tuple[tuple[str, str], ...]:
    """The (key, value) pairs of one metadata line, remembered for short lines: an
    instrument's method preamble repeats, line for line, in every file of a sequence."""
    cells = line.split(delimiter) if '"' not in line else _split(line, delimiter)
    pairs = []
    for key, value in zip(cells[::2], cells[1::2], strict=False):
        if ":" not in key:
            continue
        key = key.strip()
        if key.endswith(":") and len(key) > 1:
            pairs.append((key[:-1].strip().lower(), value.strip()))
    return tuple(pairs)


def _wavelength(lines: list[str], delimiter: str) -> float | None:
    """The wavelength of the acquired signal from the method's signal table, when present."""
    for line in lines:
        if not line.lstrip().startswith(("Yes", '"')):
            continue
        cells = _split(line, delimiter) if line.strip() else []
        if len(cells) >= 3 and cells[0].strip() == "Yes" and cells[1].startswith("Signal"):
            match = re.match(r"\s*(\d+(?:\.\d+)?)\s*nm", cells[2])
            if match:
                return float(match.group(1))
    return None
