"""The generic peak table: read only through a configured column mapping, exactly or rejected."""

from __future__ import annotations

import io

import pytest
from openpyxl import Workbook

from worker import parsers
from worker.parsers import ParserOptions
from worker.parsers.base import ParseError
from worker.parsers.table import TableMapping

CSV_MAPPING = TableMapping(files=["*.peaks.csv"], decimal_comma=True, signal="UV 254",
                           columns={"rt": "RT [min]", "area": "Fläche", "height": "Höhe"})
CSV = ("Probe;X-17\r\n\r\nRT [min];Fläche;Höhe\r\n1,25;100,5;10\r\n3,5;900;;\r\n"
       ";1000,5;\r\n").encode("cp1252")


def options(*mappings: TableMapping) -> ParserOptions:
    return ParserOptions(tables=mappings)


def test_delimited_table_with_decimal_comma() -> None:
    parsed = parsers.parse(CSV, "run.peaks.csv", options(CSV_MAPPING))
    assert parsed.format == "table" and parsed.encoding == "cp1252"
    (signal,) = parsed.signals
    assert signal.name == "UV 254" and signal.total_area == 1000.5
    assert [(p.number, p.rt_min, p.area, p.height, p.line) for p in signal.peaks] == [
        (1, 1.25, 100.5, 10.0, 4), (2, 3.5, 900.0, None, 5)]


def test_never_claimed_without_a_matching_mapping() -> None:
    with pytest.raises(ParseError, match="unrecognised format"):
        parsers.parse(CSV, "run.peaks.csv")
    with pytest.raises(ParseError, match="unrecognised format"):
        parsers.parse(CSV, "run.csv", options(CSV_MAPPING))


def test_a_row_after_the_end_of_the_table_rejects_the_file() -> None:
    data = CSV + b"7,5;3;1\r\n"
    with pytest.raises(ParseError) as err:
        parsers.parse(data, "run.peaks.csv", options(CSV_MAPPING))
    assert err.value.line == 7 and "after the end of the table" in err.value.reason


def test_unreadable_cell_gives_line_and_column() -> None:
    data = CSV.replace(b"3,5;900", b"3,5;9x0")
    with pytest.raises(ParseError) as err:
        parsers.parse(data, "run.peaks.csv", options(CSV_MAPPING))
    assert err.value.line == 5 and "Fläche" in err.value.reason


def test_mapped_header_missing_is_said() -> None:
    data = CSV.replace("Höhe".encode("cp1252"), b"Height")
    with pytest.raises(ParseError, match="Höhe"):
        parsers.parse(data, "run.peaks.csv", options(CSV_MAPPING))


def workbook(rows: list[list[object]], title: str = "Peaks") -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = title
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


XLSX_MAPPING = TableMapping(files=["*.xlsx"], sheet="Peaks", header_row=2,
                            columns={"rt": "RT", "area": "Area", "area_pct": "Area%"})


def test_xlsx_values_are_read_and_formulas_never_run() -> None:
    data = workbook([["title"], ["RT", "Area", "Area%"], [1.5, 20, 20.0], [2.5, "80", "=1+1"]])
    # openpyxl stores no computed value for the formula: it reads as empty, never evaluated.
    parsed = parsers.parse(data, "a.xlsx", options(XLSX_MAPPING))
    assert [(p.rt_min, p.area, p.area_pct) for p in parsed.signals[0].peaks] == [
        (1.5, 20.0, 20.0), (2.5, 80.0, None)]


def test_xlsx_wrong_sheet_is_named() -> None:
    data = workbook([["RT", "Area", "Area%"], [1.0, 2.0, 100.0]], title="Sheet1")
    with pytest.raises(ParseError, match="no worksheet 'Peaks'"):
        parsers.parse(data, "a.xlsx", options(XLSX_MAPPING))


def test_mapping_requires_rt_and_area() -> None:
    with pytest.raises(ValueError, match="area"):
        TableMapping(files=["*"], columns={"rt": "RT"})
