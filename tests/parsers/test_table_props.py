"""Property tests for the configured peak-table parser, delimited text and .xlsx alike.

(a) Whatever bytes arrive under a mapped name — random, damaged tables, damaged workbooks —
only ParseError escapes ``parse`` and ``sniff`` stays in 0..100; (b) a generated table, written
as delimited text (any configured separator, decimal comma or point) or as a workbook, reads
back with no row lost or changed.
"""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st
from openpyxl import Workbook
from support.fuzz import FUZZ, damage

from worker.parsers import table
from worker.parsers.base import ParsedFile, ParseError
from worker.parsers.options import ParserOptions, TableMapping

COLUMNS = {"rt": "Ret. Time", "area": "Area", "height": "Height"}
TEXT = {sep: TableMapping(files=["*.csv"], columns=COLUMNS, delimiter=sep, decimal_comma=comma)
        for sep, comma in (("\t", True), (";", True), (",", False))}
XLSX = TableMapping(files=["*.xlsx"], columns=COLUMNS)

positive = st.floats(0, 1e9, allow_nan=False, allow_infinity=False)
rows_strategy = st.lists(st.tuples(st.floats(0, 120, allow_nan=False), positive, positive),
                         min_size=1, max_size=40)
# A workbook keeps what Excel keeps: 15 significant digits.
excel = positive.map(lambda x: float(f"{x:.15g}"))
workbook_rows = st.lists(st.tuples(st.floats(0, 120, allow_nan=False).map(
    lambda x: float(f"{x:.15g}")), excel, excel), min_size=1, max_size=40)


def _text(rows: list[tuple[float, float, float]], sep: str, comma: bool) -> bytes:
    def num(x: float) -> str:
        return repr(x).replace(".", ",") if comma else repr(x)

    lines = [sep.join(COLUMNS.values())]
    lines += [sep.join(num(v) for v in row) for row in rows]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _workbook(rows: list[tuple[float, float, float]]) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.append(list(COLUMNS.values()))
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _read(data: bytes, name: str, mapping: TableMapping) -> ParsedFile | None:
    options = ParserOptions(tables=(mapping,))
    assert 0 <= table.sniff(data, name, options) <= 100
    try:
        return table.parse(data, name, options)
    except ParseError as exc:
        assert exc.reason
        return None


@FUZZ
@given(rows=rows_strategy, sep=st.sampled_from(sorted(TEXT)))
def test_generated_text_tables_round_trip(rows: list[tuple[float, float, float]],
                                          sep: str) -> None:
    mapping = TEXT[sep]
    parsed = table.parse(_text(rows, sep, mapping.decimal_comma), "run.csv",
                         ParserOptions(tables=(mapping,)))
    (signal,) = parsed.signals
    assert [(p.rt_min, p.area, p.height) for p in signal.peaks] == rows


@FUZZ
@given(rows=workbook_rows)
def test_generated_workbooks_round_trip(rows: list[tuple[float, float, float]]) -> None:
    parsed = table.parse(_workbook(rows), "run.xlsx", ParserOptions(tables=(XLSX,)))
    (signal,) = parsed.signals
    assert [(p.rt_min, p.area, p.height) for p in signal.peaks] == rows


@FUZZ
@given(data=st.binary(max_size=4096), sep=st.sampled_from(sorted(TEXT)))
def test_random_bytes_only_raise_parse_error(data: bytes, sep: str) -> None:
    _read(data, "run.csv", TEXT[sep])
    _read(data, "run.xlsx", XLSX)


@FUZZ
@given(rows=rows_strategy, sep=st.sampled_from(sorted(TEXT)), data=st.data())
def test_damaged_tables_only_raise_parse_error(rows: list[tuple[float, float, float]],
                                               sep: str, data: st.DataObject) -> None:
    mapping = TEXT[sep]
    _read(damage(_text(rows, sep, mapping.decimal_comma), data), "run.csv", mapping)


# One workbook, damaged in every way: its bytes carry save times, so a workbook made per
# example would change length between hypothesis's runs of the same example.
WORKBOOK = _workbook([(1.25, 100.5, 10.0), (3.5, 900.0, 80.0), (7.75, 12.0, 1.5)])


@FUZZ
@given(data=st.data())
def test_damaged_workbooks_only_raise_parse_error(data: st.DataObject) -> None:
    _read(damage(WORKBOOK, data), "run.xlsx", XLSX)
