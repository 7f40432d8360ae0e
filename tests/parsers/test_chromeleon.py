"""Thermo Chromeleon ASCII: golden values from the real 6.80 export, 7.x layout, rejections."""

from __future__ import annotations

from datetime import datetime

import pytest
from support.corpus import corpus_bytes

from worker.parsers import chromeleon
from worker.parsers.base import ParsedFile, ParseError
from worker.parsers.options import NO_OPTIONS

ROWS = 26401


@pytest.fixture(scope="module")
def data() -> bytes:
    """The real export (skipped when the corpus is absent, a failure under CI=true)."""
    return corpus_bytes('thermo-chromeleon', 'Adenosine Stadards_ 0.5 mM.txt')


@pytest.fixture(scope="module")
def parsed(data: bytes) -> ParsedFile:
    return chromeleon.parse(data, "Adenosine Stadards_ 0.5 mM.txt", NO_OPTIONS)


def _line_of(data: bytes, needle: bytes) -> int:
    return data[:data.index(needle)].count(b"\n") + 1


def test_sniff_claims_it(data: bytes) -> None:
    assert chromeleon.sniff(data, "whatever.csv", NO_OPTIONS) == 95


def test_rows_and_maximum_as_the_readme_prints(parsed: ParsedFile) -> None:
    (signal,) = parsed.signals
    trace = signal.trace
    assert trace is not None and trace.points == ROWS
    peak = max(range(ROWS), key=trace.values.__getitem__)
    assert (trace.values[peak], trace.times[peak]) == (323.038720, 20.441667)
    assert (trace.times[0], trace.times[-1]) == (0.0, 44.0)
    assert (trace.values[0], trace.values[1], trace.values[-1]) == (-0.0184, -0.01855, -0.8323)
    assert min(trace.values) == -2.98345  # the header's "Signal Min."
    assert (trace.time_unit, trace.value_unit) == ("min", "mAU")


def test_sample_facts(parsed: ParsedFile) -> None:
    assert parsed.format == "chromeleon" and parsed.encoding == "cp1252"
    assert parsed.sample_name == "A 0,5 mM"
    assert parsed.sample_kind == "standard"
    assert parsed.injection == 30
    assert parsed.vial == "RD2"
    assert parsed.method == "20230109_isokratisch_Methode_49Min"
    assert parsed.acquired_at == datetime(2023, 2, 2, 15, 20, 12)
    assert parsed.injection_volume == "10.00 µl"
    assert parsed.metadata["sample_id"] == "19"
    assert parsed.metadata["dilution_factor"] == "1.000000"
    assert parsed.metadata["Sample Information.Injection Volume (µl)"] == "10,00"
    assert parsed.metadata["Raw Data Header Information.Data Points"] == "26401"
    (signal,) = parsed.signals
    assert (signal.name, signal.detector, signal.wavelength_nm) == (
        "UV_VIS_1", "VWD-3x00(RS) Detector", 254.0)


def test_cut_off_rows_are_rejected_with_the_count(data: bytes) -> None:
    cut = data[:data.index(b"43,993333\t")]
    with pytest.raises(ParseError) as err:
        chromeleon.parse(cut, "x.txt", NO_OPTIONS)
    assert "26401" in err.value.reason and "26396 rows" in err.value.reason
    assert err.value.line == _line_of(data, b"43,993333\t") - 1


def test_cut_mid_row_is_rejected(data: bytes) -> None:
    with pytest.raises(ParseError, match="cut off"):
        chromeleon.parse(data[:-7], "x.txt", NO_OPTIONS)


def test_bad_cell_names_its_line(data: bytes) -> None:
    row = b"20,441667\t0,10\t323,038720\t"
    with pytest.raises(ParseError) as err:
        chromeleon.parse(data.replace(row, b"20,441667\t0,10\t323.038720\t"), "x.txt", NO_OPTIONS)
    assert err.value.line == _line_of(data, row)
    assert "Value(mAU)" in err.value.reason


def test_missing_column_names_its_line(data: bytes) -> None:
    row = b"20,441667\t0,10\t323,038720\t"
    with pytest.raises(ParseError) as err:
        chromeleon.parse(data.replace(row, b"20,441667\t323,038720\t"), "x.txt", NO_OPTIONS)
    assert err.value.line == _line_of(data, row) and "Value(mAU) is empty" in err.value.reason


def test_header_without_data_is_rejected(data: bytes) -> None:
    with pytest.raises(ParseError, match="no 'Raw Data:'"):
        chromeleon.parse(data[:data.index(b"Raw Data:\r\n")], "x.txt", NO_OPTIONS)


SEVEN = (
    "File Path\tchrom://pc/ChromeleonLocal/Instrument Data/HPLC_2/run.seq/904.smp/UV.chm\n"
    "Channel\tUV_VIS_2\n\n"
    "Injection Information:\nData Vault\tChromeleonLocal\nInjection\tBlank 3\n"
    "Injection Number\t13\nPosition\tGA1\nComment\tline one\nline two\n"
    "Instrument Method\tGRAD_30\nType\tBlank\nInjection Date\t12/06/2019\n"
    "Injection Time\t11:49:36 PM\nInjection Volume (µL)\t10.00\nDilution Factor\t2.0000\n\n"
    "Chromatogram Data Information:\nTime Min. (min)\t0.000000\nData Points\t4\n"
    "Detector\tLCSystem\n\nSignal Parameter Information:\nWavelength\t214.5 nm\n\n"
    "Chromatogram Data:\nTime (min)\tStep (s)\tValue (mAU)\n"
    "0.000000\tn.a.\t0.100\n0.003333\t0.20\t0.250\n0.006667\t0.20\t5.500\n0.010000\t0.20\t-1e-3\n")


def test_chromeleon_7_layout() -> None:
    parsed = chromeleon.parse(SEVEN.encode("utf-8-sig"), "x.txt", NO_OPTIONS)
    assert parsed.encoding == "utf-8-sig"
    assert (parsed.sample_name, parsed.injection, parsed.sample_kind, parsed.vial) == (
        "Blank 3", 13, "blank", "GA1")
    assert parsed.method == "GRAD_30" and parsed.injection_volume == "10.00 µL"
    assert parsed.acquired_at == datetime(2019, 12, 6, 23, 49, 36)
    assert parsed.metadata["Injection Information.Comment"] == "line one\nline two"
    assert parsed.metadata["dilution_factor"] == "2.0000"
    (signal,) = parsed.signals
    assert (signal.name, signal.detector, signal.wavelength_nm) == ("UV_VIS_2", "LCSystem", 214.5)
    assert signal.trace is not None
    assert list(signal.trace.times) == [0.0, 0.003333, 0.006667, 0.01]
    assert list(signal.trace.values) == [0.1, 0.25, 5.5, -0.001]


def test_not_available_only_in_the_step_column() -> None:
    with pytest.raises(ParseError) as err:
        chromeleon.parse(SEVEN.replace("\t5.500", "\tn.a.").encode(), "x.txt", NO_OPTIONS)
    assert err.value.line == SEVEN.count("\n") - 1


def test_data_points_mismatch() -> None:
    with pytest.raises(ParseError, match="states 5 data points"):
        chromeleon.parse(SEVEN.replace("Data Points\t4", "Data Points\t5").encode(), "x.txt",
                         NO_OPTIONS)
    with pytest.raises(ParseError, match="no 'Data Points'"):
        chromeleon.parse(SEVEN.replace("Data Points\t4\n", "").encode(), "x.txt", NO_OPTIONS)


# A real Chromeleon 7.2 export from a German PC (an excerpt: tests/corpus/README.md): decimal
# commas in the data and the header, a dotted date, ``n.a.`` in the first row's Step column.
SEVEN_REAL = "20170526_MME_AA_STD-Mix2-excerpt.txt"
SEVEN_ROWS = 811


@pytest.fixture(scope="module")
def seven() -> bytes:
    return corpus_bytes("thermo-chromeleon", SEVEN_REAL)


def test_real_7_2_export_reproduces_its_printed_values(seven: bytes) -> None:
    parsed = chromeleon.parse(seven, SEVEN_REAL, NO_OPTIONS)
    assert (parsed.sample_name, parsed.injection, parsed.sample_kind, parsed.vial) == (
        "20170526_MME_AA_STD-Mix2", 5, "sample", "5")
    assert parsed.method == "0-400 mM NaAc 40 min_OHNE_PORT_B 1HZ"
    assert parsed.operator == "Instrument Controller"
    assert parsed.acquired_at == datetime(2017, 5, 26, 16, 52, 2) and parsed.flags == []
    assert parsed.injection_volume == "25.0 µl" and parsed.dilution_factor == 1.0
    (signal,) = parsed.signals
    assert (signal.name, signal.detector, signal.wavelength_nm) == ("ED_1", "DC-3000", None)
    trace = signal.trace
    assert trace is not None and trace.points == SEVEN_ROWS
    assert (trace.time_unit, trace.value_unit) == ("min", "nC")
    # "Signal Min." -0,774900 and "Signal Max." 210,061603, at the times the rows print them.
    low = min(range(SEVEN_ROWS), key=trace.values.__getitem__)
    top = max(range(SEVEN_ROWS), key=trace.values.__getitem__)
    assert (trace.values[low], trace.times[low]) == (-0.7749, 1.416667)
    assert (trace.values[top], trace.times[top]) == (210.061603, 13.3)
    assert (trace.times[0], trace.values[0]) == (0.0, -0.0896)  # the row whose Step is n.a.
    assert (trace.times[-1], trace.values[-1]) == (13.5, 9.35705)
    assert all(round(t * 60, 3) == i for i, t in enumerate(trace.times))  # 1 s steps


def test_real_7_2_export_a_decimal_point_among_commas_names_its_line(seven: bytes) -> None:
    row = b"\n13,300000\t1\t210,061603\n"
    with pytest.raises(ParseError) as err:
        chromeleon.parse(seven.replace(row, b"\n13,300000\t1\t210.061603\n"), SEVEN_REAL,
                         NO_OPTIONS)
    assert err.value.line == _line_of(seven, row) + 1 and "Value (nC)" in err.value.reason


def test_real_7_2_export_a_missing_row_breaks_the_count(seven: bytes) -> None:
    with pytest.raises(ParseError) as err:
        chromeleon.parse(seven.replace(b"13,300000\t1\t210,061603\n", b""), SEVEN_REAL,
                         NO_OPTIONS)
    assert f"states {SEVEN_ROWS} data points but the table has {SEVEN_ROWS - 1} rows" in (
        err.value.reason)


def test_real_7_2_export_not_available_in_the_value_column_is_rejected(seven: bytes) -> None:
    row = b"\n0,000000\tn.a.\t-0,089600\n"
    with pytest.raises(ParseError) as err:
        chromeleon.parse(seven.replace(row, b"\n0,000000\tn.a.\tn.a.\n"), SEVEN_REAL, NO_OPTIONS)
    assert err.value.line == _line_of(seven, row) + 1
