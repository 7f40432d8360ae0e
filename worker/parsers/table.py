"""A peak table whose columns the lab maps in the configuration (delimited text or ``.xlsx``).

For instruments without a built-in parser: a ``[tables.NAME]`` entry in the settings names the
file-name globs it applies to and which column header holds the retention time, the area and
optionally Area%, height, name … (see ``TableMapping``). Decisions, and why:

* **Never claimed unless configured.** ``sniff`` scores 0 for a file no mapping's glob matches,
  so a spreadsheet such as the lab's calibration workbook stays rejected as unrecognised. A file a
  glob matches is claimed (so that its rejection says what the mapping did not find) but below
  the built-in parsers' scores, so a broad glob cannot steal their files.
* **Pure.** The registry passes the mappings from the settings as an argument; there is no I/O.
  Workbooks are opened from the bytes by openpyxl in read-only mode with ``data_only``: the
  values Excel stored are read and no formula is ever evaluated; a cell with a formula but no
  stored value reads as empty, and an empty required cell rejects the file.
* **The header row** is the configured one, else the first row holding every mapped header. The
  table ends at the first blank row or a row whose RT cell is empty (a ``Total`` line); a peak row
  after that end rejects the file, so no row is silently left out. Text cells are read with
  ``parse_number`` (decimal comma only when configured); numeric Excel cells are taken as stored.
* Area% is taken when mapped, else left to the chemistry (area / total × 100).
"""

from __future__ import annotations

import csv
import fnmatch
import io
import math
from collections.abc import Iterator, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from worker.parsers.base import ParsedFile, ParseError, Peak, Signal
from worker.parsers.text import decode, parse_number, split_lines

name = "table"
version = "1.0"
configurable = True  # the registry passes the configured mappings to sniff and parse

PeakColumn = Literal["rt", "area", "area_pct", "height", "name", "number", "begin", "end",
                     "width", "type"]
_FIELD = {"rt": "rt_min", "area": "area", "area_pct": "area_pct", "height": "height",
          "name": "name", "number": "number", "begin": "begin_min", "end": "end_min",
          "width": "width_min", "type": "peak_type"}
_TEXT_COLUMNS = ("name", "type")
_XLSX_MAGIC = b"PK\x03\x04"
_HEADER_SEARCH_ROWS = 200
_CLAIM, _MATCHED = 85, 55


class TableMapping(BaseModel):
    """One ``[tables.NAME]`` entry: which files, and which header holds which peak field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    files: list[str] = Field(min_length=1, description="file-name globs, e.g. ['*_peaks.xlsx']")
    columns: dict[PeakColumn, str] = Field(
        description="peak field → column header as printed; rt and area are required")
    sheet: str | None = Field(None, description="worksheet name (xlsx); default the first")
    header_row: int | None = Field(None, ge=1, description="1-based; default: found by headers")
    delimiter: str | None = Field(None, min_length=1, max_length=1,
                                  description="text files: default TAB, ';' or ',' as found")
    decimal_comma: bool = Field(False, description="text cells use a decimal comma")
    signal: str = Field("table", min_length=1, description="name of the signal in the rows")

    @field_validator("columns")
    @classmethod
    def _required(cls, columns: dict[str, str]) -> dict[str, str]:
        missing = [c for c in ("rt", "area") if c not in columns]
        if missing:
            raise ValueError(f"columns must map {' and '.join(missing)} to a header")
        return columns

    def applies_to(self, filename: str) -> bool:
        base = filename.replace("\\", "/").rsplit("/", 1)[-1].lower()
        return any(fnmatch.fnmatch(base, glob.lower()) for glob in self.files)


def sniff(data: bytes, filename: str, mappings: Sequence[TableMapping] = ()) -> int:
    """Only files a configured glob matches; higher when the mapped header is found."""
    score = 0
    for mapping in mappings:
        if not mapping.applies_to(filename):
            continue
        try:
            rows = list(_rows(data, filename, mapping))
            _header(rows, mapping)
        except ParseError:
            score = max(score, _MATCHED)
            continue
        return _CLAIM
    return score


def parse(data: bytes, filename: str, mappings: Sequence[TableMapping] = ()) -> ParsedFile:
    """The peak table of the first mapping that applies to ``filename``."""
    applicable = [m for m in mappings if m.applies_to(filename)]
    if not applicable:
        raise ParseError("no [tables.*] mapping in the configuration applies to this file name",
                         filename=filename)
    errors: list[str] = []
    for mapping in applicable:
        try:
            return _parse(data, filename, mapping)
        except ParseError as exc:
            if len(applicable) == 1:
                raise
            errors.append(str(exc))
    raise ParseError("no configured table mapping fits: " + "; ".join(errors), filename=filename)


def _parse(data: bytes, filename: str, mapping: TableMapping) -> ParsedFile:
    rows = list(_rows(data, filename, mapping))
    at, positions = _header(rows, mapping)
    peaks: list[Peak] = []
    ended_at: int | None = None
    for index in range(at + 1, len(rows)):
        line, cells = rows[index]
        rt_cell = _cell(cells, positions["rt"])
        if ended_at is None and (_blank(cells) or _blank([rt_cell])):
            ended_at = line
            continue
        if ended_at is not None:
            if not _blank(cells) and _is_number(rt_cell, mapping) and _is_number(
                    _cell(cells, positions["area"]), mapping):
                raise ParseError(f"a peak row after the end of the table (line {ended_at}): "
                                 "blank or total rows inside a table are not allowed", line=line,
                                 filename=filename)
            continue
        peaks.append(_peak(cells, positions, mapping, line, len(peaks) + 1, filename))
    if not peaks:
        raise ParseError("the mapped table has no peak rows", line=rows[at][0], filename=filename)
    total = math.fsum(p.area for p in peaks)
    workbook = data.startswith(_XLSX_MAGIC)
    return ParsedFile(
        format=name, parser_version=version, encoding="xlsx" if workbook else _encoding(data),
        metadata={"table.mapping": ",".join(mapping.files), "table.header_line": str(rows[at][0])},
        signals=[Signal(name=mapping.signal, peaks=peaks, total_area=total)])


def _rows(data: bytes, filename: str, mapping: TableMapping) -> Iterator[tuple[int, list[object]]]:
    """(1-based row or line number, cells) of a workbook sheet or a delimited text file."""
    if data.startswith(_XLSX_MAGIC):
        yield from _sheet_rows(data, filename, mapping)
        return
    text, _ = decode(data, filename)
    lines = split_lines(text)
    delimiter = mapping.delimiter or _delimiter(lines[:_HEADER_SEARCH_ROWS])
    for number, line in enumerate(lines, start=1):
        try:
            yield number, next(csv.reader([line], delimiter=delimiter, strict=True), [])
        except csv.Error as exc:
            raise ParseError(f"malformed delimited row: {exc}", line=number,
                             filename=filename) from None


# A damaged workbook fails inside zipfile, zlib, the XML parser or openpyxl with whatever they
# raise (BadZipFile, zlib.error, NotImplementedError for a mangled version field, struct.error,
# SyntaxError …): the fuzz tests keep finding new kinds. Only library code runs where this is
# caught, and each kind means the same to a lab: the file is not a readable workbook.


def _sheet_rows(data: bytes, filename: str,
                mapping: TableMapping) -> Iterator[tuple[int, list[object]]]:
    from openpyxl import load_workbook  # only workbooks need it

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # a damaged workbook: see above
        raise ParseError(f"not a readable .xlsx workbook: {exc}", filename=filename) from None
    try:
        if mapping.sheet is not None and mapping.sheet not in book.sheetnames:
            raise ParseError(f"no worksheet {mapping.sheet!r} (the workbook has "
                             f"{', '.join(book.sheetnames)})", filename=filename)
        sheet = book[mapping.sheet] if mapping.sheet else book.worksheets[0]
        # Read all rows here: in read-only mode a damaged part only fails while it is read.
        rows = [list(values) for values in sheet.iter_rows(values_only=True)]
    except ParseError:
        raise
    except Exception as exc:  # a damaged workbook: see above
        raise ParseError(f"not a readable .xlsx workbook: {type(exc).__name__}: {exc}",
                         filename=filename) from None
    finally:
        book.close()
    yield from enumerate(rows, start=1)


def _delimiter(lines: list[str]) -> str:
    counts = {d: sum(line.count(d) for line in lines) for d in ("\t", ";", ",")}
    return max(counts, key=lambda d: (counts[d], d == "\t"))


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _header(rows: list[tuple[int, list[object]]],
            mapping: TableMapping) -> tuple[int, dict[str, int]]:
    """Index of the header row in ``rows`` and each mapped field's column position."""
    wanted = {field: header.strip().lower() for field, header in mapping.columns.items()}
    candidates = (range(len(rows)) if mapping.header_row is None
                  else [i for i, (n, _) in enumerate(rows) if n == mapping.header_row])
    for index in candidates:
        if mapping.header_row is None and index >= _HEADER_SEARCH_ROWS:
            break
        cells = [_text(c).lower() for c in rows[index][1]]
        if all(h in cells for h in wanted.values()):
            return index, {field: cells.index(h) for field, h in wanted.items()}
        if mapping.header_row is not None:
            missing = [mapping.columns[f] for f, h in wanted.items() if h not in cells]
            raise ParseError(f"header row {mapping.header_row} lacks the mapped column(s) "
                             f"{', '.join(missing)}", line=mapping.header_row)
    raise ParseError("no row holds all the mapped column headers "
                     f"({', '.join(mapping.columns.values())})",
                     line=mapping.header_row)


def _cell(cells: list[object], position: int) -> object:
    return cells[position] if position < len(cells) else None


def _blank(cells: list[object]) -> bool:
    return all(_text(c) == "" for c in cells)


def _is_number(value: object, mapping: TableMapping) -> bool:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return True
    try:
        parse_number(_text(value), decimal_comma=mapping.decimal_comma)
    except ParseError:
        return False
    return True


def _peak(cells: list[object], positions: dict[str, int], mapping: TableMapping, line: int,
          number: int, filename: str) -> Peak:
    fields: dict[str, object] = {"number": number, "line": line}
    for column, position in positions.items():
        value = _cell(cells, position)
        header = mapping.columns[column]  # type: ignore[index]
        if column in _TEXT_COLUMNS:
            fields[_FIELD[column]] = _text(value) or None
            continue
        if _text(value) == "":
            if column in ("rt", "area"):
                raise ParseError(f"{header} is empty", line=line, filename=filename)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ParseError(f"{header} {value!r} is not a number", line=line, filename=filename)
        number_value = (float(value) if isinstance(value, int | float)
                        else parse_number(value, decimal_comma=mapping.decimal_comma,
                                          what=header, line=line, filename=filename))
        if column == "number":
            if number_value != int(number_value) or number_value < 1:
                raise ParseError(f"{header} {value!r} is not a peak number", line=line,
                                 filename=filename)
            fields["number"] = int(number_value)
        else:
            fields[_FIELD[column]] = number_value
    try:
        return Peak(**fields)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        raise ParseError(f"invalid peak row ({problems})", line=line, filename=filename) from None


def _encoding(data: bytes) -> str:
    return decode(data)[1]
