"""Agilent OpenLab CDS peak-table CSV: both layouts, exact values, and clear rejections."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker import parsers
from worker.parsers import agilent_openlab
from worker.parsers.base import ParseError
from worker.parsers.options import NO_OPTIONS

HEADER = "Height,Area,Area%,Peak Begin Time,Peak End Time,RT [min]"

EXPECTED = {  # file: (peaks, main Area, main Area%, main RT, Sum)
    "12_Report.csv": (5, 56.9860, 72.7608, 7.643, 78.3197),
    "25_Report.csv": (4, 107.7670, 87.9293, 7.633, 122.5611),
    "50_Report.csv": (7, 214.6817, 88.6495, 7.631, 242.1690),
    "100_Report.csv": (5, 411.4072, 96.7426, 7.624, 425.2596),
    "250_Report.csv": (7, 1021.4570, 97.8468, 7.603, 1043.9356),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_reports_reproduce_printed_values(corpus: Path, name: str) -> None:
    data = (corpus / "agilent-1290" / name).read_bytes()
    assert parsers.detect(data, name) is agilent_openlab
    parsed = agilent_openlab.parse(data, name, NO_OPTIONS)
    (signal,) = parsed.signals
    n, area, pct, rt, total = EXPECTED[name]
    assert len(signal.peaks) == n
    main = max(signal.peaks, key=lambda p: p.area_pct)
    assert (main.area, main.area_pct, main.rt_min) == (area, pct, rt)
    assert signal.total_area == total
    assert signal.wavelength_nm == 220.0
    assert parsed.method == "1290 AOD9604 method.amx"
    assert parsed.injection_volume == "5.00 µL"
    assert parsed.format == "agilent-openlab-csv/report"


def peakdata(rows: list[str], meta: str = "Sample name:,P-0111_Inj_1\n", total: str = "") -> bytes:
    total = total or f"{sum(float(r.split(',')[1]) for r in rows):.4f}"
    return "\n".join([HEADER, *rows, f"Sum,{total},,,,", "", meta]).encode()


def test_peakdata_layout_reads_sample_name_from_metadata() -> None:
    data = peakdata(["1.0,10.0000,10.0000,1.0,1.2,1.1", "9.0,90.0000,90.0000,2.0,2.4,2.2"])
    parsed = agilent_openlab.parse(data, "P-0111_Inj_1_PeakData.csv", NO_OPTIONS)
    assert parsed.sample_name == "P-0111_Inj_1"
    assert parsed.format == "agilent-openlab-csv/peakdata"
    assert [p.area for p in parsed.signals[0].peaks] == [10.0, 90.0]
    assert [p.line for p in parsed.signals[0].peaks] == [2, 3]


@pytest.mark.parametrize(("rows", "total", "line", "words"), [
    (["1,10,50,1,2,1.5", "1,abc,50,2,3,2.5"], "20", 3, "Area 'abc' is not a number"),
    (["1,10,50,1,2,1.5", "1,-10,50,2,3,2.5"], "0", 3, "Area"),
    (["1,10,50,1,2,1.5", "1,10,50,2,3"], "20", 3, "row has 5 cells"),
    (["1,10,50,1,2,1.5", "1,10,50,2,3,2.5"], "25.0000", 4, "disagrees"),
    ([], "0", 2, "zero peaks"),
])
def test_bad_tables_are_rejected_with_line_and_reason(rows: list[str], total: str, line: int,
                                                      words: str) -> None:
    with pytest.raises(ParseError) as err:
        agilent_openlab.parse(peakdata(rows, total=total), "x.csv", NO_OPTIONS)
    assert err.value.line == line
    assert words in err.value.reason


def test_table_without_sum_row_is_rejected_as_cut_off() -> None:
    data = (HEADER + "\n1,10,50,1,2,1.5\n1,10,50,2,3,2.5\n").encode()
    with pytest.raises(ParseError, match="without its Sum row"):
        agilent_openlab.parse(data, "cut.csv", NO_OPTIONS)


def test_missing_required_column_is_not_a_peak_table() -> None:
    data = b"Height,Area%,Peak Begin Time\n1,50,1\nSum,1\n"
    assert agilent_openlab.sniff(data, "x.csv", NO_OPTIONS) == 0
    with pytest.raises(ParseError, match="RT and Area"):
        agilent_openlab.parse(data, "x.csv", NO_OPTIONS)


def test_semicolon_export_with_decimal_commas() -> None:
    data = (b"Height;Area;Area%;Peak Begin Time;Peak End Time;RT [min]\n"
            b"1,5;10,25;25,0000;1,0;1,2;1,1\n2;30,75;75,0000;2,0;2,4;2,2\nSum;41,00;;;;\n")
    peaks = agilent_openlab.parse(data, "x.csv", NO_OPTIONS).signals[0].peaks
    assert [(p.area, p.rt_min) for p in peaks] == [(10.25, 1.1), (30.75, 2.2)]


def test_a_garbled_signal_wavelength_is_left_out_not_a_crash(corpus: Path) -> None:
    """A damaged method line (``220.100.0 nm``) once escaped as ValueError instead of a parse
    result: the peaks are still the file's, the wavelength is simply not stated."""
    data = (corpus / "agilent-1290" / "100_Report.csv").read_bytes()
    damaged = data.replace(b"Yes,Signal A,220.0 nm", b"Yes,Signal A,220.100.0 nm")
    assert damaged != data
    (signal,) = agilent_openlab.parse(damaged, "100_Report.csv", NO_OPTIONS).signals
    assert signal.wavelength_nm is None
    assert len(signal.peaks or []) == 5
