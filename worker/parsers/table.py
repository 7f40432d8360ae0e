"""A peak table whose columns the lab maps in the configuration (delimited text or ``.xlsx``).

For instruments without a built-in parser: a ``[tables.NAME]`` entry in the settings names the
file-name globs it applies to and which column header holds the retention time, the area and
optionally Area%, height, name … (see ``TableMapping``). Decisions, and why:

* **Never claimed unless configured.** ``sniff`` scores 0 for a file no mapping's glob matches,
  so a spreadsheet such as the lab's calibration workbook stays rejected as unrecognised. A file a
  glob matches is claimed (so that its rejection says what the mapping did not find) but below
  the built-in parsers' scores, so a broad glob cannot steal their files.
* **Pure.** The mappings come in ``options.tables`` like every parser's options; there is no I/O.
  Workbooks are opened from the bytes by openpyxl in read-only mode with ``data_only``: the
  values Excel stored are read and no formula is ever evaluated; a cell with a formula but no
  stored value reads as empty, and an empty required cell rejects the file.
* **The header row** is the configured one, else the first row holding every mapped header. The
  table ends at the first blank row or a row whose RT cell is empty (a ``Total`` line); a peak row
  after that end rejects the file, so no row is silently left out. Text cells are read with
  ``parse_number`` (decimal comma only when configured); numeric Excel cells are taken as stored.
* Area% is taken when mapped, else left to the chemistry (area / total × 100).
* **Bounded workbooks.** An ``.xlsx`` is a zip: a few hundred kilobytes can inflate to gigabytes
  (a zip bomb), or hold a million rows. Before openpyxl sees it, the parts' uncompressed sizes
  are checked as declared and again while actually inflating them (the headers may lie), and
  their XML elements are counted; rows and cells are counted again as openpyxl reads them. Each
  limit (``MAX_XLSX_*`` below) is far above any real peak table, which has at most a few
  thousand rows; beyond one the file is rejected naming it.
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
from collections.abc import Iterator
from xml.parsers import expat

from worker.parsers.base import (
    MIN_CONFIDENCE,
    NOT_MINE,
    ParsedFile,
    ParseError,
    Peak,
    Signal,
    validated,
)
from worker.parsers.options import ParserOptions, TableMapping
from worker.parsers.text import decode, parse_number, split_lines

name = "table"
version = "1.0"
display_name = "Peak table mapped in the configuration ([tables.NAME]: delimited text or .xlsx)"
extensions = (".csv", ".tsv", ".txt", ".xlsx")

_FIELD = {"rt": "rt_min", "area": "area", "area_pct": "area_pct", "height": "height",
          "name": "name", "number": "number", "begin": "begin_min", "end": "end_min",
          "width": "width_min", "type": "peak_type"}
_TEXT_COLUMNS = ("name", "type")
_XLSX_MAGIC = b"PK\x03\x04"
_HEADER_SEARCH_ROWS = 200
# The mapped headers found (85) or only the glob matched (55): configured, never the format's own
# signature, so below the built-in parsers' 90–100 for their own files.
_CLAIM, _MATCHED = 85, MIN_CONFIDENCE + 5
# Workbook limits (see the module docstring), each far above a real peak table: all parts
# together once inflated; the rows of the sheet and its cells, as written and as openpyxl reads
# them (padding for skipped rows and columns included); the XML elements of one row or shared
# string (Excel's 16,384 columns, a few elements each); those of any other part (styles …).
MAX_XLSX_BYTES = 32 * 1024 * 1024
MAX_XLSX_ROWS = 100_000
MAX_XLSX_CELLS = ParserOptions.model_fields["max_sheet_cells"].default  # shared strings too
MAX_XLSX_ROW_ELEMENTS = 65_536
MAX_XLSX_PART_ELEMENTS = 100_000


def sniff(data: bytes, filename: str, options: ParserOptions) -> int:
    """Only files a configured glob matches; higher when the mapped header is found."""
    score = NOT_MINE
    for mapping in options.tables:
        if not mapping.applies_to(filename):
            continue
        try:
            rows = list(_rows(data, filename, mapping, options))
            _header(rows, mapping)
        except ParseError:
            score = max(score, _MATCHED)
            continue
        return _CLAIM
    return score


def parse(data: bytes, filename: str, options: ParserOptions) -> ParsedFile:
    """The peak table of the first mapping that applies to ``filename``."""
    applicable = [m for m in options.tables if m.applies_to(filename)]
    if not applicable:
        raise ParseError("no [tables.*] mapping in the configuration applies to this file name",
                         filename=filename)
    errors: list[str] = []
    for mapping in applicable:
        try:
            return _parse(data, filename, mapping, options)
        except ParseError as exc:
            if len(applicable) == 1:
                raise
            errors.append(str(exc))
    raise ParseError("no configured table mapping fits: " + "; ".join(errors), filename=filename)


def _parse(data: bytes, filename: str, mapping: TableMapping,
           options: ParserOptions) -> ParsedFile:
    rows = list(_rows(data, filename, mapping, options))
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
        format=name, parser_version=version,
        encoding="xlsx" if workbook else _encoding(data, filename, options),
        metadata={"table.mapping": ",".join(mapping.files), "table.header_line": str(rows[at][0])},
        signals=[Signal(name=mapping.signal, peaks=peaks, total_area=total)])


def _rows(data: bytes, filename: str, mapping: TableMapping,
          options: ParserOptions) -> Iterator[tuple[int, list[object]]]:
    """(1-based row or line number, cells) of a workbook sheet or a delimited text file."""
    if data.startswith(_XLSX_MAGIC):
        yield from _sheet_rows(data, filename, mapping, options.max_sheet_cells)
        return
    text, _ = decode(data, filename, configured=options.encoding_for(filename),
                     default=options.default_encoding)
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


def _sheet_rows(data: bytes, filename: str, mapping: TableMapping,
                max_cells: int) -> Iterator[tuple[int, list[object]]]:
    from openpyxl import load_workbook  # only workbooks need it

    try:
        _check_parts(data, filename)
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except ParseError:
        raise
    except Exception as exc:  # a damaged workbook: see above
        raise ParseError(f"not a readable .xlsx workbook: {exc}", filename=filename) from None
    try:
        if mapping.sheet is not None and mapping.sheet not in book.sheetnames:
            raise ParseError(f"no worksheet {mapping.sheet!r} (the workbook has "
                             f"{', '.join(book.sheetnames)})", filename=filename)
        sheet = book[mapping.sheet] if mapping.sheet else book.worksheets[0]
        # Read all rows here: in read-only mode a damaged part only fails while it is read.
        rows: list[list[object]] = []
        cells = 0
        for values in sheet.iter_rows(values_only=True):
            if len(rows) == MAX_XLSX_ROWS:
                raise _over_limit(f"worksheet {sheet.title!r} has more than "
                                  f"{MAX_XLSX_ROWS:,} rows", "MAX_XLSX_ROWS", filename)
            cells += len(values)
            if cells > max_cells:
                raise ParseError(f"worksheet {sheet.title!r} has more than {max_cells:,} cells "
                                 f"({cells:,} in its first {len(rows) + 1:,} rows): over the "
                                 "limit that keeps a file's memory bounded (max_sheet_cells = "
                                 f"{max_cells}); raise max_sheet_cells if the file is genuine",
                                 filename=filename)
            rows.append(list(values))
    except ParseError:
        raise
    except Exception as exc:  # a damaged workbook: see above
        raise ParseError(f"not a readable .xlsx workbook: {type(exc).__name__}: {exc}",
                         filename=filename) from None
    finally:
        book.close()
    yield from enumerate(rows, start=1)


def _check_parts(data: bytes, filename: str) -> None:
    """ParseError when the workbook's parts exceed a ``MAX_XLSX_*`` limit.

    Sizes are checked as the zip directory declares them, then as the parts actually inflate
    (a bomb may understate them), in bounded chunks; the XML of each part is counted on the way
    by expat, which builds nothing. openpyxl holds a whole row, a whole style sheet, every shared
    string in memory: a few kilobytes of repeated ``<c/>`` or ``<xf/>`` inflate to gigabytes
    there, so the elements are bounded before openpyxl sees them.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = archive.infolist()
        declared = sum(m.file_size for m in members)
        if declared > MAX_XLSX_BYTES:
            biggest = max(members, key=lambda m: m.file_size)
            raise _over_limit(
                f"the workbook's parts declare {declared:,} bytes uncompressed ({biggest.filename} "
                f"{biggest.file_size:,} from {biggest.compress_size:,}), over "
                f"{MAX_XLSX_BYTES:,}", "MAX_XLSX_BYTES", filename)
        inflated = 0
        for member in members:
            scan = (_PartScan(member.filename, filename)
                    if member.filename.endswith((".xml", ".rels")) else None)
            with archive.open(member) as part:
                while chunk := part.read(1 << 20):
                    inflated += len(chunk)
                    if inflated > MAX_XLSX_BYTES:
                        raise _over_limit(
                            f"the workbook's parts inflate to more than {MAX_XLSX_BYTES:,} bytes "
                            f"(reached in {member.filename}, which declares "
                            f"{member.file_size:,})", "MAX_XLSX_BYTES", filename)
                    if scan is not None:
                        scan.parser.Parse(chunk, False)
            if scan is not None:
                scan.parser.Parse(b"", True)


class _PartScan:
    """Counts one XML part's elements as it inflates: a worksheet's rows, cells and the elements
    of each row; the shared strings and each string's elements; any other element."""

    def __init__(self, part: str, filename: str) -> None:
        self.part, self.filename = part, filename
        self.record = ("row" if part.startswith("xl/worksheets/")
                       else "si" if part == "xl/sharedStrings.xml" else None)
        self.records = self.cells = self.inside = self.outside = self.depth = 0
        self.parser = expat.ParserCreate()
        self.parser.StartElementHandler = self._start
        self.parser.EndElementHandler = self._end
        self.parser.StartDoctypeDeclHandler = self._doctype

    def _start(self, tag: str, _attributes: object) -> None:
        local = tag.rpartition(":")[2]
        if self.depth:
            self.depth += 1
            self.inside += 1
            if self.inside > MAX_XLSX_ROW_ELEMENTS:
                raise self._over(f"{'row' if self.record == 'row' else 'shared string'} "
                                 f"{self.records:,} holds more than "
                                 f"{MAX_XLSX_ROW_ELEMENTS:,} XML elements", "MAX_XLSX_ROW_ELEMENTS")
            if local == "c" and self.record == "row":
                self.cells += 1
                if self.cells > MAX_XLSX_CELLS:
                    raise self._over(f"more than {MAX_XLSX_CELLS:,} cells", "MAX_XLSX_CELLS")
        elif local == self.record:
            self.depth, self.inside = 1, 0
            self.records += 1
            most, constant = ((MAX_XLSX_ROWS, "MAX_XLSX_ROWS") if local == "row"
                              else (MAX_XLSX_CELLS, "MAX_XLSX_CELLS"))
            if self.records > most:
                what = "rows" if local == "row" else "shared strings"
                raise self._over(f"more than {most:,} {what}", constant)
        else:
            self.outside += 1
            if self.outside > MAX_XLSX_PART_ELEMENTS:
                raise self._over(f"more than {MAX_XLSX_PART_ELEMENTS:,} XML elements"
                                 + (" outside its rows" if self.record == "row" else ""),
                                 "MAX_XLSX_PART_ELEMENTS")

    def _end(self, _tag: str) -> None:
        if self.depth:
            self.depth -= 1

    def _doctype(self, *_declaration: object) -> None:
        raise ParseError(f"the workbook part {self.part} declares a DOCTYPE, which no workbook "
                         "has (its entities could expand without bound)", filename=self.filename)

    def _over(self, what: str, constant: str) -> ParseError:
        return _over_limit(f"{self.part}: {what}", constant, self.filename)


def _over_limit(what: str, constant: str, filename: str) -> ParseError:
    return ParseError(f"{what}: refused as too large for a peak table (limit {constant} in "
                      "worker/parsers/table.py)", filename=filename)


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
    with validated("invalid peak row", line=line, filename=filename):
        return Peak(**fields)  # type: ignore[arg-type]


def _encoding(data: bytes, filename: str, options: ParserOptions) -> str:
    return decode(data, configured=options.encoding_for(filename),
                  default=options.default_encoding)[1]
