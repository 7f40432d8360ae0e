"""Mapped ``.xlsx`` workbooks are bounded: a zip bomb or a million-row sheet is refused, naming
the limit, before it costs gigabytes; a normal workbook still reads."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import pytest

from worker import parsers
from worker.parsers import ParserOptions
from worker.parsers.base import ParseError
from worker.parsers.table import (
    MAX_XLSX_BYTES,
    MAX_XLSX_CELLS,
    MAX_XLSX_PART_ELEMENTS,
    MAX_XLSX_ROW_ELEMENTS,
    MAX_XLSX_ROWS,
    TableMapping,
)

MAPPING = TableMapping(files=["*_peaks.xlsx"], sheet="Peaks", columns={"rt": "RT", "area": "Area"})
OPTIONS = ParserOptions(tables=(MAPPING,))
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PARTS = {
    "[Content_Types].xml":
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/'
        'sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.'
        'worksheet+xml"/></Types>',
    "_rels/.rels":
        f'<Relationships xmlns="{_RELS}"><Relationship Id="rId1" Type="{_DOC}/officeDocument" '
        'Target="xl/workbook.xml"/></Relationships>',
    "xl/workbook.xml":
        f'<workbook xmlns="{_MAIN}" xmlns:r="{_DOC}"><sheets><sheet name="Peaks" sheetId="1" '
        'r:id="rId1"/></sheets></workbook>',
    "xl/_rels/workbook.xml.rels":
        f'<Relationships xmlns="{_RELS}"><Relationship Id="rId1" Type="{_DOC}/worksheet" '
        'Target="worksheets/sheet1.xml"/></Relationships>',
}
_HEADER = ('<row r="1"><c r="A1" t="inlineStr"><is><t>RT</t></is></c>'
           '<c r="B1" t="inlineStr"><is><t>Area</t></is></c></row>')


_REL_TYPES = {"xl/styles.xml": "styles", "xl/sharedStrings.xml": "sharedStrings"}


def write_workbook(path: Path, body: Iterable[str], dimension: str | None = None,
                   part: tuple[str, Iterable[str]] | None = None) -> Path:
    """An ``.xlsx`` whose sheet XML is the header row then ``body`` (and one more ``part``,
    e.g. the styles), streamed into the zip so that even a sheet of hundreds of megabytes is
    never held in memory."""
    parts = dict(_PARTS)
    if part is not None:
        rels = parts["xl/_rels/workbook.xml.rels"]
        target = part[0].removeprefix("xl/")
        parts["xl/_rels/workbook.xml.rels"] = rels.replace("</Relationships>", (
            f'<Relationship Id="rId2" Type="{_DOC}/{_REL_TYPES[part[0]]}" Target="{target}"/>'
            "</Relationships>"))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as book:
        for name, xml in parts.items():
            book.writestr(name, xml)
        dim = f'<dimension ref="{dimension}"/>' if dimension else ""
        streams = {"xl/worksheets/sheet1.xml": [f'<worksheet xmlns="{_MAIN}">{dim}<sheetData>',
                                                _HEADER, body, "</sheetData></worksheet>"]}
        if part is not None:
            streams[part[0]] = [part[1]]
        for name, pieces in streams.items():
            with book.open(name, "w") as out:
                for piece in pieces:
                    _stream(out, [piece] if isinstance(piece, str) else piece)
    return path


def _stream(out: IO[bytes], pieces: Iterable[str]) -> None:
    buffer: list[str] = []
    for piece in pieces:
        buffer.append(piece)
        if len(buffer) == 4096:
            out.write("".join(buffer).encode())
            buffer.clear()
    out.write("".join(buffer).encode())


def peak_rows(n: int, first: int = 2) -> Iterator[str]:
    for r in range(first, first + n):
        yield (f'<row r="{r}"><c r="A{r}"><v>{1 + r / 1e6:.6f}</v></c>'
               f'<c r="B{r}"><v>{r}</v></c></row>')


def bomb_rows(megabytes: int) -> Iterator[str]:
    """The same row again and again: deflate packs it about 1000:1."""
    row = "<row><c><v>1.5</v></c><c><v>2</v></c></row>"
    yield from [row] * (megabytes * 1024 * 1024 // len(row))


def test_a_normal_written_workbook_reads(tmp_path: Path) -> None:
    data = write_workbook(tmp_path / "a_peaks.xlsx", peak_rows(3000)).read_bytes()
    parsed = parsers.parse(data, "a_peaks.xlsx", OPTIONS)
    peaks = parsed.signals[0].peaks
    assert len(peaks) == 3000 and (peaks[0].rt_min, peaks[0].area) == (1.000002, 2.0)


def test_a_zip_bomb_is_refused_by_its_size(tmp_path: Path) -> None:
    path = write_workbook(tmp_path / "bomb_peaks.xlsx", bomb_rows(256))
    assert path.stat().st_size < 1024 * 1024  # about 1000:1
    with pytest.raises(ParseError) as err:
        parsers.parse(path.read_bytes(), path.name, OPTIONS)
    assert "MAX_XLSX_BYTES" in err.value.reason and f"{MAX_XLSX_BYTES:,}" in err.value.reason
    assert "xl/worksheets/sheet1.xml" in err.value.reason


def test_a_bomb_understating_its_size_is_refused(tmp_path: Path) -> None:
    """Its zip directory declares a small sheet: inflating never goes past that, and the
    rest of the bomb fails the part's checksum."""
    path = write_workbook(tmp_path / "liar_peaks.xlsx", bomb_rows(256))
    data = bytearray(path.read_bytes())
    name = b"xl/worksheets/sheet1.xml"
    entry = data.index(b"PK\x01\x02")  # central directory entries: the sheet's holds its size
    while data[entry + 46:entry + 46 + len(name)] != name:
        entry = data.index(b"PK\x01\x02", entry + 4)
    data[entry + 24:entry + 28] = (4096).to_bytes(4, "little")  # its uncompressed size
    with pytest.raises(ParseError, match=r"not a readable \.xlsx workbook"):
        parsers.parse(bytes(data), path.name, OPTIONS)


def repeat(text: str, times: int) -> Iterator[str]:
    yield from [text] * times


@pytest.mark.parametrize(("body", "dimension", "part", "limit"), [
    pytest.param(peak_rows(MAX_XLSX_ROWS + 10), None, None, f"more than {MAX_XLSX_ROWS:,} rows",
                 id="rows"),
    # openpyxl pads the rows a sheet skips, and every row to the width its dimension claims.
    pytest.param(peak_rows(1, first=MAX_XLSX_ROWS + 10), None, None,
                 f"more than {MAX_XLSX_ROWS:,} rows", id="skipped-rows"),
    pytest.param(peak_rows(200), "A1:XFD201", None, f"more than {MAX_XLSX_CELLS:,} cells",
                 id="claimed-width"),
    # A few kilobytes that openpyxl would hold whole: one row of two million cells, two million
    # cell formats, a million and a half shared strings.
    pytest.param(['<row r="2">', *repeat("<c/>", 2_000_000), "</row>"], None, None,
                 f"row 2 holds more than {MAX_XLSX_ROW_ELEMENTS:,} XML elements", id="wide-row"),
    pytest.param(peak_rows(3), None, ("xl/styles.xml", [
        f'<styleSheet xmlns="{_MAIN}"><cellXfs>', *repeat("<xf/>", 2_000_000),
        "</cellXfs></styleSheet>"]), f"more than {MAX_XLSX_PART_ELEMENTS:,} XML elements",
                 id="styles"),
    pytest.param(peak_rows(3), None, ("xl/sharedStrings.xml", [
        f'<sst xmlns="{_MAIN}">', *repeat("<si><t>x</t></si>", 1_500_000), "</sst>"]),
                 f"more than {MAX_XLSX_CELLS:,} shared strings", id="shared-strings"),
])
def test_workbook_limits(tmp_path: Path, body: Iterable[str], dimension: str | None,
                         part: tuple[str, Iterable[str]] | None, limit: str) -> None:
    data = write_workbook(tmp_path / "x_peaks.xlsx", body, dimension, part).read_bytes()
    with pytest.raises(ParseError) as err:
        parsers.parse(data, "x_peaks.xlsx", OPTIONS)
    # The cells of a sheet are the max_sheet_cells setting; the rest are the parser's own.
    named = "max_sheet_cells" if "cells (" in err.value.reason else "limit MAX_XLSX_"
    assert limit in err.value.reason and named in err.value.reason


_MEASURED = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=300)
print(done.returncode)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(done.stdout + done.stderr)
"""


def test_one_shot_ingest_refuses_bomb_and_million_rows_in_bounded_memory(tmp_path: Path) -> None:
    """The one-shot ingest of a bomb, a 1,000,000-row sheet and a normal workbook: the first two
    rejected naming the limit, peak memory far below what inflating them takes."""
    folder = tmp_path / "exports" / "run"
    folder.mkdir(parents=True)
    write_workbook(folder / "bomb_peaks.xlsx", bomb_rows(256))
    write_workbook(folder / "million_peaks.xlsx", peak_rows(1_000_000))
    write_workbook(folder / "P-7_Inj_1_peaks.xlsx", peak_rows(40))
    config = tmp_path / "accu-ingest.toml"
    config.write_text('[tables.lab]\nfiles = ["*_peaks.xlsx"]\nsheet = "Peaks"\n'
                      'columns = {rt = "RT", area = "Area"}\n', encoding="utf-8")
    command = [sys.executable, "-m", "worker", "ingest", str(folder), "--config", str(config),
               "--inbox", str(tmp_path / "inbox"), "--data-dir", str(tmp_path / "data")]
    done = subprocess.run([sys.executable, "-c", _MEASURED, *command], capture_output=True,
                          text=True, timeout=360, check=True)
    code, peak_kib, output = done.stdout.split("\n", 2)
    assert code == "1", output
    assert "1 ingested, 2 rejected" in output
    rejected = {line.split(":", 1)[0]: line for line in output.splitlines()
                if line.startswith("REJECTED")}
    assert "MAX_XLSX_BYTES" in rejected["REJECTED run/bomb_peaks.xlsx"]
    assert "MAX_XLSX_BYTES" in rejected["REJECTED run/million_peaks.xlsx"]
    assert int(peak_kib) < 400 * 1024, f"peak RSS {int(peak_kib) // 1024} MB"
