"""The OpenLab CSV parser as it was before its fast paths, kept verbatim as the reference
they are compared with (``test_openlab_fast_paths``): every speed-up must give the same
ParsedFile, or the same ParseError, as this plain reading of the file.

Agilent OpenLab CDS peak-table CSV, in its two layouts.

"Report": method metadata lines, then the table ``Height,Area,Area%,Peak Begin Time,Peak End
Time,RT [min]``, the peak rows and a ``Sum,<total area>`` row. "PeakData": the table first, then
``Key:,Value`` metadata lines such as ``Sample name:,P-0111_Inj_1``. In both, the ``Sum`` row is
what proves the table is complete: without it, or when it disagrees with the rows, the file is
rejected. Semicolon-delimited exports (European locales) use decimal commas.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from functools import lru_cache

from pydantic import ValidationError

from worker.parsers.base import (
    MIN_CONFIDENCE,
    NOT_MINE,
    ParsedFile,
    ParseError,
    Peak,
    Signal,
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


def _header_fields(cells: list[str]) -> list[str | None] | None:
    """Map a header row to Peak fields, or None when the row is not a peak-table header.

    Three known column names, one of them RT or Area, make a header; one that lacks a required
    column is still recognised, so the file is rejected for that (``_missing``) and not as an
    unknown format.
    """
    fields = [_column(c) for c in cells]
    known = [f for f in fields if f]
    if len(known) < 3 or not any(req in fields for req in REQUIRED):
        return None
    return fields


def _column(cell: str) -> str | None:
    """``COLUMNS.get(_norm(cell))``, remembered for short cells: the cells of headers and
    preambles repeat from file to file (long ones are not kept, so the cache stays small)."""
    return _short_column(cell) if len(cell) <= 64 else COLUMNS.get(_norm(cell))


@lru_cache(maxsize=4096)
def _short_column(cell: str) -> str | None:
    return COLUMNS.get(_norm(cell))


def _missing(fields: list[str | None]) -> list[str]:
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


def _header_in(line: str, delimiter: str) -> list[str | None] | None:
    """The header fields of ``line`` while sniffing, where an unreadable line is no header."""
    # A header has three known cells, so at least two delimiters (CSV splits only at them).
    if line.count(delimiter) < 2:
        return None
    try:
        return _header_fields(_split(line, delimiter))
    except ParseError:
        return None


def _delimiter(text: str) -> str:
    """``;`` when a line of ``text`` (LF line ends) is a header split at semicolons."""
    if ";" in text:
        for _, _, _, line in _candidates(text):
            if _header_in(line, ";") is not None:
                return ";"
    return ","


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


def _score(fields: list[str | None]) -> int:
    if _missing(fields):
        return MIN_CONFIDENCE + 5  # ours, with a column missing: parse() says which
    if "area_pct" in fields and "height" in fields:
        return 90  # the full OpenLab header
    return MIN_CONFIDENCE + 20  # a peak-table header, as other software writes too


def sniff(data: bytes, filename: str, options: ParserOptions) -> int:
    try:
        text, _ = decode(data[:_SNIFF_BYTES], configured=options.encoding_for(filename),
                         default=options.default_encoding)
    except (ParseError, UnicodeDecodeError):
        return NOT_MINE
    text = _lf(text)
    delimiter = _delimiter(text)
    for index, _, _, line in _candidates(text):
        if index >= _SNIFF_LINES:
            break
        fields = _header_in(line, delimiter)
        if fields is not None:
            return _score(fields)
    return NOT_MINE


def parse(data: bytes, filename: str, options: ParserOptions) -> ParsedFile:
    text, encoding = decode(data, filename, configured=options.encoding_for(filename),
                            default=options.default_encoding)
    lf = _lf(text)
    ends_with_break = text.endswith(("\n", "\r"))
    del text  # a big file's text is held once (``lf`` may be it)
    # Lines are cut out one at a time, never all at once: a file of a million rows is
    # rejected by the peaks limit before its rows cost memory.
    count = lf.count("\n") + (0 if lf.endswith("\n") or not lf else 1)
    delimiter = _delimiter(lf)
    decimal_comma = delimiter == ";"

    header_at = None
    fields: list[str | None] = []
    header_start = header_end = 0
    for i, start, end, line in _candidates(lf):
        found = _header_fields(_split(line, delimiter, i + 1))
        if found is not None:
            if header_at is not None:
                raise ParseError(f"a second peak-table header (first at line {header_at + 1})",
                                 line=i + 1, filename=filename)
            if _missing(found):
                raise ParseError(f"peak-table header has no {' or '.join(_missing(found))} "
                                 "column", line=i + 1, filename=filename)
            header_at, fields, header_start, header_end = i, found, start, end
    if header_at is None:
        raise ParseError("no peak table header with RT and Area columns", filename=filename)

    rows: list[list[str]] = []
    sum_at = None
    total = None
    i, at = header_at + 1, header_end + 1
    while i < count:
        end = lf.find("\n", at)
        end = len(lf) if end < 0 else end
        line = lf[at:end]
        cells = _split(line, delimiter, i + 1) if line.strip() else []
        if not cells or not any(c.strip() for c in cells):
            break
        if _norm(cells[0]) == "sum":
            sum_at = i
            sum_cell = cells[1] if len(cells) > 1 else ""
            total = parse_number(sum_cell, decimal_comma=decimal_comma, what="Sum", line=i + 1,
                                 filename=filename)
            break
        rows.append(cells)
        if len(rows) > options.max_peaks_per_table:
            raise too_many("peaks in the table", options.max_peaks_per_table,
                           "max_peaks_per_table", line=i + 1, filename=filename)
        i, at = i + 1, end + 1
    first = header_at + 2
    peaks = (None if decimal_comma else _fast_peaks(rows, fields, first)) or [
        _peak(cells, fields, n, line, decimal_comma, filename)
        for n, (line, cells) in enumerate(enumerate(rows, start=first), start=1)]
    if sum_at is None:
        where = i + 1 if i < count else count
        raise ParseError("peak table ends without its Sum row (file cut off or incomplete)",
                         line=where, filename=filename)
    if header_at > 0 and sum_at == count - 1 and not ends_with_break:
        # A Report's Sum row ends with its line end (and a blank line): a file that stops
        # inside it is a part still being written, whose total may be cut short.
        raise ParseError("the Sum row has no line end: the file is cut off or still being "
                         "written", line=sum_at + 1, filename=filename)
    if not peaks:
        raise ParseError("peak table has zero peaks", line=sum_at + 1, filename=filename)
    assert total is not None
    _check_sum(peaks, total, sum_cell, sum_at + 1, filename)
    peaks = _with_area_pct(peaks, total)

    before = _lines(lf[:header_start])
    metadata = _metadata(before + _lines(lf[at:])[1:], delimiter)
    signal_name = metadata.get("signal", "Signal A")
    wavelength = _wavelength(before, delimiter)
    values = {field: metadata[key] for key, field in FIELD_KEYS.items() if key in metadata}
    layout = "report" if header_at > 0 else "peakdata"
    with validated("invalid metadata", filename=filename):
        return ParsedFile(
            format=f"{name}/{layout}", parser_version=version, encoding=encoding,
            metadata=metadata,
            signals=[Signal(name=signal_name, detector="DAD", wavelength_nm=wavelength,
                            peaks=peaks, total_area=total)],
            **values,
        )


# What the numeric cells of a dot-decimal table may hold for ``float`` to read them exactly as
# ``parse_number`` does: with only these characters, both accept and refuse the same cells.
_PLAIN_NUMBER_TEXT = b"0123456789.+-eE \t"


def _fast_peaks(rows: list[list[str]], fields: list[str | None],
                first: int) -> list[Peak] | None:
    """The peaks of a plain table (every row as many cells as the header, numbers only, no
    quotes), read with ``float`` in one pass; None for anything else, which ``_peak`` then reads
    row by row and rejects with the row's line and reason."""
    width = len(fields)
    numeric = [(i, f) for i, f in enumerate(fields) if f is not None and f not in TEXT_FIELDS]
    if len(numeric) != sum(f is not None for f in fields):
        return None  # name or type columns: the exact reader
    cells = [cell for row in rows for cell in row]
    if any(len(row) != width for row in rows) or "".join(cells).encode(
            "ascii", "replace").translate(None, _PLAIN_NUMBER_TEXT):
        return None
    peaks: list[Peak] = []
    try:
        for n, row in enumerate(rows, start=1):
            values = {f: float(row[i]) for i, f in numeric if row[i].strip()}
            peaks.append(Peak(number=n, line=first + n - 1, **values))  # type: ignore[arg-type]
    except (ValueError, ValidationError):  # an empty required cell, a bad number, a model check
        return None
    return peaks


def _peak(cells: list[str], fields: list[str | None], number: int, line: int,
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


def _check_sum(peaks: list[Peak], total: float, sum_cell: str, line: int, filename: str) -> None:
    """The printed Sum must equal the rows' areas to the precision it is printed with."""
    fraction = re.search(r"[.,](\d+)", sum_cell)
    decimals = len(fraction.group(1)) if fraction else 0
    computed = math.fsum(p.area for p in peaks)
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
