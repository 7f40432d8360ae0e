"""Agilent ChemStation "Area Percent Report" (``Report.TXT`` in a ``.D`` folder).

The file is UTF-16 LE with a BOM and CRLF line ends, laid out for a printer:

* a preamble (``Data File …``, ``Sample Name: …``, a page-header line);
* between two ``=====`` rules, the run facts as ``Key : value`` pairs, two per line, long values
  hard-wrapped onto indented continuation lines;
* titled sections (``=====`` / title / ``=====``). The first is the peak report proper: a few
  ``Key : value`` settings, then per signal a ``Signal N: <description>`` line, a two-line column
  header, a dashed rule whose ``|`` marks end each column, the peak rows and a ``Totals :`` line.
  Later sections (``Summed Peaks Report`` …) repeat the signal names without tables;
* ``*** End of Report ***``.

Columns are cut at the rule's ``|`` positions rather than split on blanks, because the Type
column holds values with spaces (``BB S``) and ChemStation switches numbers to scientific notation
(``4.57137e4``) to keep them inside their column. A character on a ``|`` position therefore means
a row that does not fit the layout, and the file is rejected.

Completeness: every table must end with its ``Totals :`` line, and the printed totals must equal
the sum of the rows to printed precision (a lost, doubled or altered row shows up there); the file
must end with ``*** End of Report ***``. A column we do not know (other report types: ``Amount``,
``Norm%`` …) rejects the file rather than being dropped. Area% is taken as printed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from worker.parsers.base import (
    CERTAIN,
    MIN_CONFIDENCE,
    NOT_MINE,
    ParsedFile,
    ParseError,
    Peak,
    Signal,
)
from worker.parsers.chemstation_common import (
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
from worker.parsers.text import ascii_bytes, may_contain, parse_number

name = "agilent-chemstation-txt"
version = "1.0"
display_name = "Agilent ChemStation Area Percent report (Report.TXT)"
extensions = (".txt",)

_SECTION_RULE = re.compile(r"={20,}")
_TABLE_RULE = re.compile(r"-+(?:\|-+)+\|?")
_SIGNAL = re.compile(r"Signal ([0-9]{1,4}):(.*)")
_END = "*** End of Report ***"
_TOTALS = "Totals :"
# ``Key : value``: the key is words joined by single blanks, and at least one blank precedes the
# colon, which tells it apart from drive letters (``C:\``) and times (``5:21:19``) in values.
_KEY = r"(?P<key>[^\s:]+(?: [^\s:]+)*)"
_PAIR = re.compile(_KEY + r" +: ?(?P<value>.*)")
# The right-hand pair of a two-pair facts line, after two or more blanks; since a key has no
# double blank, a left value with double blanks in it is not split there.
_RIGHT_PAIR = re.compile(r"(?P<left>.*?\S)\s{2,}" + _KEY + r" +: ?(?P<value>.*)")
_METHOD_NOTE = re.compile(r"(?P<path>.*\.M)\s+\((?P<note>[^()]*)\)", re.IGNORECASE)
# ChemStation prints plain numbers only: no quotes, no thousands or decimal commas, and an
# exponent of at most two digits (it only needs one to fit a column), which also keeps the
# printed-precision arithmetic of the Totals check within float range.
_NUMBER_CELL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,2})?")

# Column header (top line, bottom line) -> Peak field. The bottom line carries the unit; Area and
# Area % share the top word and differ only there.
_FIELDS_BY_TOP = {"Peak": "number", "RetTime": "rt_min", "Type": "peak_type",
                  "Width": "width_min", "Height": "height", "Name": "name"}
_MINUTES = {"rt_min", "width_min"}
_REQUIRED = ("number", "rt_min", "area")
_TEXT_FIELDS = ("peak_type", "name")
_SUMMED = ("area", "height")  # the columns a Totals line may print


# The landmarks of ``sniff`` that can lift a file to MIN_CONFIDENCE: the others (a Signal
# title, the Acq. Operator and Injection Date keys) come to 30 together. A file with none of
# these scores 0, which its bytes tell without decoding.
_FIRST = "Data File "
_FIRST_BYTES = _FIRST.encode()
_LANDMARKS = (_FIRST, "-|-", "Area Percent Report")


def sniff(data: bytes, filename: str, options: ParserOptions) -> int:
    """Confidence from the report's landmarks, each adding its share (all five and the name make
    ``CERTAIN``; the first line and any two tables-and-titles landmarks reach the LIKELY band);
    the ``Report.TXT`` name only tips a close call. Landmarks that come to less than
    MIN_CONFIDENCE score 0: such a file is not claimed either way, and most files are let go
    on their bytes (``_LANDMARKS``)."""
    configured = options.encoding_for(filename)
    view = ascii_bytes(data, configured, options.default_encoding)
    if view is not None and not _may_score(view):
        return NOT_MINE
    if not may_contain(data, _LANDMARKS, configured, options.default_encoding):
        return NOT_MINE
    text = sniff_text(data, filename, options)
    if text is None:
        return NOT_MINE
    text = text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text
    # Each landmark is looked for where its text occurs, never line by line.
    score = NOT_MINE
    if text.startswith(_FIRST):
        score += 25
    if _any_line(text, "Signal ", lambda line: _SIGNAL.fullmatch(line) is not None, True):
        score += 20
    if _any_line(text, "-|-", lambda line: _TABLE_RULE.fullmatch(line) is not None):
        score += 20
    if any(_any_line(text, key, lambda line, key=key: line.startswith(key), True)
           for key in ("Acq. Operator", "Injection Date")):
        score += 10
    if _any_line(text, "Area Percent Report",
                 lambda line: line.strip() == "Area Percent Report"):
        score += 20
    if score < MIN_CONFIDENCE:
        return NOT_MINE
    if filename.lower().endswith("report.txt"):
        score += 5
    return min(score, CERTAIN)


def _may_score(view: bytes) -> bool:
    """False only when none of ``_LANDMARKS`` can be in the text of ``view``
    (``text.ascii_bytes``): "-|-" after a memchr for its bar, with ``find``, not ``in`` (``in``
    on bytes first tries the needle as an int, and formats the error it then clears)."""
    return view.startswith(_FIRST_BYTES) or (view.find(b"|") >= 0 and view.find(b"-|-") >= 0) \
        or view.find(b"Area Percent Report") >= 0


def _any_line(text: str, needle: str, test: Callable[[str], bool],
              starts: bool = False) -> bool:
    """Whether a line of ``text`` (LF line ends) holding ``needle`` (at its start, with
    ``starts``) passes ``test``."""
    at = text.find(needle)
    while at >= 0:
        if starts and at and text[at - 1] != "\n":
            at = text.find(needle, at + 1)
            continue
        start = text.rfind("\n", 0, at) + 1
        end = text.find("\n", at)
        end = len(text) if end < 0 else end
        if test(text[start:end]):
            return True
        at = text.find(needle, end)
    return False


@dataclass(frozen=True)
class _Column:
    field: str
    start: int
    end: int
    unit: str


def parse(data: bytes, filename: str, options: ParserOptions) -> ParsedFile:
    """The whole report as a ``ParsedFile``, or ``ParseError`` with the line that fails."""
    lines, encoding = decode_lines(data, filename, options)
    # A cut-off file is reported where it breaks (a table without Totals) when it does; the
    # missing End of Report is only the last resort of the checks below.
    end_line = _end_of_report(lines)
    end = len(lines) if end_line is None else end_line
    rules = [i for i in range(end) if _SECTION_RULE.fullmatch(lines[i])]
    if len(rules) < 2:
        raise ParseError("no '=====' rules around the run facts: not a ChemStation report",
                         line=1, filename=filename)

    metadata: dict[str, str] = {}
    _read_preamble(lines[: rules[0]], metadata, filename)
    _read_pairs(lines, rules[0] + 1, rules[1], metadata, filename, wrapped=True)

    sections = _sections(lines, rules, end, filename)
    if not sections:
        raise ParseError("no titled report section after the run facts", line=rules[1] + 1,
                         filename=filename)
    (title, body_start, body_end), *others = sections
    metadata["Report"] = title
    signals = _read_report_body(lines, body_start, body_end, metadata, filename)
    for other_title, start, stop in others:
        for i in range(start, stop):
            if _TABLE_RULE.fullmatch(lines[i]):
                raise ParseError(f"a table in the {other_title!r} section is not supported",
                                 line=i + 1, filename=filename)
    if not signals:
        raise ParseError(f"no 'Signal N:' peak table in the {title!r} section",
                         line=body_start + 1, filename=filename)
    if end_line is None:
        raise ParseError(f"the report does not end with '{_END}': file cut off or not a report",
                         line=len(lines), filename=filename)

    method = metadata.get("Method")
    if method and (m := _METHOD_NOTE.fullmatch(method)):
        method = m.group("path")
    return ParsedFile(
        format=name,
        parser_version=version,
        encoding=encoding,
        sample_name=metadata.get("Sample Name") or None,
        injection=injection_number(metadata.get("Inj", "")),
        vial=vial_from_location(metadata.get("Location", "")),
        instrument=metadata.get("Acq. Instrument") or None,
        method=method or None,
        operator=metadata.get("Acq. Operator") or None,
        acquired_at=parse_chemstation(metadata.get("Injection Date", "")),
        injection_volume=metadata.get("Inj Volume") or None,
        metadata=metadata,
        signals=signals,
    )


def _end_of_report(lines: list[str]) -> int | None:
    """Index of the ``*** End of Report ***`` line if it is the last non-blank line: the proof
    that the printer-style report was written to its end."""
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].strip():
            return i if lines[i].strip() == _END else None
    return None


def _put(metadata: dict[str, str], key: str, value: str, line: int, filename: str) -> None:
    """Store one fact; the same key twice with different values is an ambiguity we refuse."""
    key = " ".join(key.split())
    value = value.strip()
    if key in metadata and metadata[key] != value:
        raise ParseError(f"{key!r} is given twice ({metadata[key]!r}, {value!r})", line=line,
                         filename=filename)
    metadata[key] = value


def _read_preamble(preamble: list[str], metadata: dict[str, str], filename: str) -> None:
    """``Data File <path>``, ``Sample Name: <name>`` and the page header (instrument, print time,
    user) that ChemStation repeats on every printed page."""
    for i, line in enumerate(preamble, start=1):
        if line.startswith("Data File "):
            _put(metadata, "Data File", line[len("Data File "):], i, filename)
        elif line.startswith("Sample Name:"):
            _put(metadata, "Sample Name", line[len("Sample Name:"):], i, filename)
        elif line.strip():
            _put(metadata, "Page header", line, i, filename)


def _read_pairs(lines: list[str], start: int, stop: int, metadata: dict[str, str],
                filename: str, *, wrapped: bool) -> None:
    """``Key : value`` lines (one or two pairs each) into ``metadata``.

    With ``wrapped``, an indented line without a pair continues the previous left-hand value:
    ChemStation hard-wraps long paths mid-word (``…LIQUIDE.M (`` / ``Sequence Method)``), so the
    pieces are joined without a separator. Other free-text lines (``Use Multiplier & Dilution
    Factor with ISTDs``) are kept as numbered notes.
    """
    last_left: str | None = None
    notes = sum(key.startswith("Note ") for key in metadata)
    wraps: dict[str, list[str]] = {}  # key -> continuation pieces, joined once at the end
    for i in range(start, stop):
        line = lines[i]
        if not line.strip():
            last_left = None
            continue
        if line[0].isspace():
            pair = _PAIR.fullmatch(line.strip())
            if pair:
                _put(metadata, pair["key"], pair["value"], i + 1, filename)
            elif wrapped and last_left is not None:
                wraps.setdefault(last_left, []).append(line.strip())
            else:
                raise ParseError(f"cannot read the line {line.strip()!r}", line=i + 1,
                                 filename=filename)
            continue
        pair = _PAIR.fullmatch(line)
        if pair is None:
            notes += 1
            _put(metadata, f"Note {notes}", line, i + 1, filename)
            last_left = None
            continue
        key, value = pair["key"], pair["value"]
        right = _RIGHT_PAIR.fullmatch(value)
        if right:
            value = right["left"]
            _put(metadata, right["key"], right["value"], i + 1, filename)
        _put(metadata, key, value, i + 1, filename)
        last_left = " ".join(key.split())
    for key, pieces in wraps.items():
        metadata[key] += "".join(pieces)


def _sections(lines: list[str], rules: list[int], end: int,
              filename: str) -> list[tuple[str, int, int]]:
    """(title, body start, body end) of each ``=====``/title/``=====`` section after the run
    facts; a body runs to the next rule or to the End of Report line."""
    sections: list[tuple[str, int, int]] = []
    k = 1
    while k < len(rules):
        rule = rules[k]
        following = rules[k + 1] if k + 1 < len(rules) else None
        if following is None and not any(line.strip() for line in lines[rule + 1: end]):
            break  # the closing rule before End of Report
        if following != rule + 2 or not lines[rule + 1].strip():
            raise ParseError("expected a section title between two '=====' rules",
                             line=rule + 2, filename=filename)
        body_end = rules[k + 2] if k + 2 < len(rules) else end
        sections.append((lines[rule + 1].strip(), following + 1, body_end))
        k += 2
    return sections


def _read_report_body(lines: list[str], start: int, stop: int, metadata: dict[str, str],
                      filename: str) -> list[Signal]:
    """The report settings, then each ``Signal N:`` with its peak table."""
    first_signal = next((i for i in range(start, stop) if _SIGNAL.fullmatch(lines[i])), stop)
    for i in range(start, first_signal):
        if _TABLE_RULE.fullmatch(lines[i]):
            raise ParseError("a peak table without its 'Signal N:' line", line=i + 1,
                             filename=filename)
    _read_pairs(lines, start, first_signal, metadata, filename, wrapped=False)
    signals: list[Signal] = []
    seen: set[int] = set()
    i = first_signal
    while i < stop:
        match = _SIGNAL.fullmatch(lines[i])
        if match is None:
            if lines[i].strip():
                raise ParseError(f"unexpected line {lines[i].strip()!r} between peak tables",
                                 line=i + 1, filename=filename)
            i += 1
            continue
        number = int(match.group(1))
        if number in seen:
            raise ParseError(f"Signal {number} appears twice", line=i + 1, filename=filename)
        seen.add(number)
        signal, i = _read_signal(lines, i, stop, number, match.group(2), metadata, filename)
        signals.append(signal)
    return signals


def _read_signal(lines: list[str], at: int, stop: int, number: int, description: str,
                 metadata: dict[str, str], filename: str) -> tuple[Signal, int]:
    """One signal's table; returns it and the index of the first line after its Totals line."""
    description = signal_description(description)
    i = at + 1
    while i < stop and not lines[i].strip():
        i += 1
    if i + 2 >= stop or not _TABLE_RULE.fullmatch(lines[i + 2]):
        raise ParseError(f"Signal {number}: expected a two-line column header and a dashed rule",
                         line=min(i + 3, len(lines)), filename=filename)
    columns = _columns(lines[i], lines[i + 1], lines[i + 2], i + 1, filename)
    rule = lines[i + 2]
    for column in columns:
        if column.field in _SUMMED and column.unit:
            metadata[f"Signal {number} {column.field} unit"] = column.unit
    peaks: list[Peak] = []
    printed: list[dict[str, str]] = []
    row = i + 3
    while True:
        if row >= stop or not lines[row].strip() or _SIGNAL.fullmatch(lines[row]):
            raise ParseError(f"Signal {number}: peak table ends without its 'Totals :' line "
                             "(file cut off?)", line=min(row + 1, len(lines)), filename=filename)
        if lines[row].startswith(_TOTALS):
            break
        cells = _cells(lines[row], row + 1, rule, columns, filename)
        peaks.append(read_peak(cells, row + 1, peaks, filename, text_fields=_TEXT_FIELDS,
                               number=_number))
        printed.append(cells)
        row += 1
    total_area = _check_totals(lines[row], row + 1, rule, columns, printed, filename)
    detector, wavelength = describe_signal(description)
    signal = Signal(name=description or f"Signal {number}", detector=detector,
                    wavelength_nm=wavelength, peaks=peaks, total_area=total_area)
    return signal, row + 1


def _columns(top: str, bottom: str, rule: str, line: int, filename: str) -> list[_Column]:
    """Column spans from the rule (each dash run, ending at its ``|``) and their meaning from the
    two header lines cut at the same spans."""
    columns: list[_Column] = []
    for m in re.finditer(r"-+", rule):
        start, end = m.span()
        head, unit = top[start:end].strip(), bottom[start:end].strip()
        if head == "Area":
            field = "area_pct" if unit == "%" else "area"
        else:
            field = _FIELDS_BY_TOP.get(head, "")
        if not field or any(c.field == field for c in columns):
            label = f"{head} {unit}".strip()
            raise ParseError(f"unknown or repeated column {label!r}", line=line, filename=filename)
        if field in _MINUTES and unit != "[min]":
            raise ParseError(f"column {head!r} is in {unit!r}, not [min]", line=line + 1,
                             filename=filename)
        columns.append(_Column(field, start, end, unit.strip("[]") if unit != "%" else ""))
    missing = [f for f in _REQUIRED if all(c.field != f for c in columns)]
    if missing:
        raise ParseError(f"peak table lacks the column(s) {', '.join(missing)}", line=line,
                         filename=filename)
    return columns


def _cells(text: str, line: int, rule: str, columns: list[_Column],
           filename: str) -> dict[str, str]:
    """The stripped cell of each column; a character on a ``|`` position or past the rule means
    the row does not fit the layout."""
    for p, char in enumerate(rule):
        if char == "|" and p < len(text) and not text[p].isspace():
            raise ParseError(f"text crosses a column boundary at character {p + 1}", line=line,
                             filename=filename)
    if text[len(rule):].strip():
        raise ParseError("text beyond the last column", line=line, filename=filename)
    return {c.field: text[c.start:c.end].strip() for c in columns}


def _number(cell: str, what: str, line: int, filename: str) -> float:
    if not _NUMBER_CELL.fullmatch(cell):
        raise ParseError(f"{what} {cell!r} is not a number", line=line, filename=filename)
    return parse_number(cell, what=what, line=line, filename=filename)


def _half_unit(cell: str) -> float:
    """Half a unit of the last printed digit: ``4.66870e4`` → 0.05, ``955.59546`` → 0.000005.

    Only called on cells that ``_number`` accepted, so the layout is known.
    """
    mantissa, _, exponent = cell.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 0.5 * 10.0 ** (int(exponent or 0) - decimals)


def _check_totals(text: str, line: int, rule: str, columns: list[_Column],
                  printed: list[dict[str, str]], filename: str) -> float:
    """Compare each printed total with the sum of its column; returns the printed area total.

    The rows and the total are each rounded to their printed digits, so they may disagree by at
    most half a unit of every number involved; anything more is a lost or altered row.
    """
    cells = _cells(" " * len(_TOTALS) + text[len(_TOTALS):], line, rule, columns, filename)
    area_total: float | None = None
    for field, cell in cells.items():
        if not cell:
            continue
        if field not in _SUMMED:
            raise ParseError(f"Totals line prints a value under {field}", line=line,
                             filename=filename)
        total = _number(cell, f"total {field}", line, filename)
        row_cells = [row[field] for row in printed if row[field]]
        summed = math.fsum(float(c) for c in row_cells)
        tolerance = _half_unit(cell) + math.fsum(_half_unit(c) for c in row_cells)
        tolerance += 1e-9 * max(abs(total), abs(summed))
        if abs(total - summed) > tolerance:
            raise ParseError(f"Totals {field} {cell} disagrees with the sum of the "
                             f"{len(printed)} rows ({summed:.10g})", line=line, filename=filename)
        if field == "area":
            area_total = total
    if area_total is None:
        raise ParseError("Totals line has no area total", line=line, filename=filename)
    return area_total
