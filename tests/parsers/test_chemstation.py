"""Golden tests: the ChemStation parsers reproduce every value the real corpus files print.

The corpus is not shipped with the package; the tests carry a copy in ``tests/corpus``.
Without it these tests skip with the reason, except on CI (``CI=true``) where a missing corpus
would silently turn the golden tests off, so there it fails.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from support.corpus import corpus_bytes

from worker.parsers import chemstation_csv, chemstation_txt
from worker.parsers.base import ParsedFile, ParseError, Peak
from worker.parsers.options import NO_OPTIONS

CHEMSTATION = "agilent-chemstation"
GC_RUN = "001F0101.D"
LC_RUN = "001-1-0312650-0713-SM.D"
CSV_SET = ("Report00.CSV", "REPORT01.CSV", "REPORT02.CSV")


def corpus_file(*parts: str) -> bytes:
    """The bytes of one corpus file (skipped when the corpus is absent, a failure on CI)."""
    return corpus_bytes(*parts)


def chemstation_file(run: str, name: str) -> bytes:
    return corpus_file(CHEMSTATION, run, name)


def csv_set() -> dict[str, bytes]:
    return {name: chemstation_file(GC_RUN, name) for name in CSV_SET}


def txt_lines(run: str) -> list[str]:
    """The report's lines, for tests that alter a real file and expect a rejection."""
    return chemstation_file(run, "Report.TXT").decode("utf-16").split("\r\n")


def as_report(lines: list[str]) -> bytes:
    """Lines back into ChemStation's encoding: UTF-16 LE with a BOM, CRLF."""
    return ("\ufeff" + "\r\n".join(lines)).encode("utf-16-le")


def rows(peaks: list[Peak] | None) -> list[tuple[object, ...]]:
    assert peaks is not None
    return [(p.number, p.rt_min, p.peak_type, p.width_min, p.area, p.height, p.area_pct)
            for p in peaks]


def reject(parser: object, data: bytes, filename: str = "Report.TXT") -> ParseError:
    with pytest.raises(ParseError) as caught:
        parser.parse(data, filename, NO_OPTIONS)  # type: ignore[attr-defined]
    return caught.value


# --- Report.TXT, HPLC-DAD run: one signal, 12 peaks -------------------------------------------

LC_ROWS = [
    (1, 0.389, "VB", 0.0281, 34.52074, 14.83516, 0.9311),
    (2, 0.515, "BV R", 0.0154, 898.96716, 845.81909, 24.2468),
    (3, 0.879, "BV", 0.0821, 73.20538, 10.79736, 1.9745),
    (4, 0.896, "VB", 0.0211, 12.55488, 7.30049, 0.3386),
    (5, 1.248, "BV", 0.1282, 141.52744, 13.35166, 3.8173),
    (6, 1.271, "VV", 0.0193, 14.99162, 10.41850, 0.4044),
    (7, 1.293, "VB", 0.0276, 11.87349, 7.16116, 0.3202),
    (8, 1.377, "BB", 0.0320, 2409.49829, 1196.56750, 64.9886),
    (9, 1.745, "VB R", 0.0188, 11.64653, 8.57712, 0.3141),
    (10, 1.860, "BB", 0.0174, 7.76987, 6.30026, 0.2096),
    (11, 1.936, "BB", 0.0345, 59.63470, 24.02159, 1.6085),
    (12, 2.147, "BB", 0.0179, 31.38164, 26.25699, 0.8464),
]


def test_lc_report_every_printed_value() -> None:
    parsed = chemstation_txt.parse(chemstation_file(LC_RUN, "Report.TXT"), "Report.TXT", NO_OPTIONS)
    assert parsed.format == chemstation_txt.name
    assert parsed.encoding == "utf-16-le"
    (signal,) = parsed.signals
    assert signal.name == "DAD1 A, Sig=210,4 Ref=360,100"
    assert signal.detector == "DAD1 A"
    assert signal.wavelength_nm == 210
    assert rows(signal.peaks) == LC_ROWS
    assert [p.line for p in signal.peaks or []] == list(range(29, 41))
    assert signal.total_area == 3707.57174
    main = max(signal.peaks or [], key=lambda p: p.area_pct or 0)
    assert (main.number, main.rt_min, main.area, main.area_pct) == (8, 1.377, 2409.49829, 64.9886)
    assert parsed.metadata["Signal 1 area unit"] == "mAU*s"
    assert parsed.metadata["Signal 1 height unit"] == "mAU"


def test_lc_report_run_facts() -> None:
    parsed = chemstation_txt.parse(chemstation_file(LC_RUN, "Report.TXT"), "Report.TXT", NO_OPTIONS)
    assert parsed.sample_name == "0312650-0713-SM"
    assert parsed.injection == 1
    assert parsed.vial == "1"
    assert parsed.instrument == "MRK0111734"
    assert parsed.operator == "SYSTEM"
    assert parsed.acquired_at == datetime(2021, 9, 30, 17, 21, 19)
    assert parsed.injection_volume == "Manually"
    # The method path is wrapped over two lines in the file, mid-word.
    assert parsed.method == ("C:\\Chem32\\2\\Data\\Photobromination\\E-Z 2021-09-30 17-18-47\\"
                             "Photobromination-09-30-2021.M")
    assert parsed.metadata["Method"].endswith(".M (Sequence Method)")
    assert parsed.metadata["Report"] == "Area Percent Report"
    assert parsed.metadata["Seq. Line"] == "1"
    assert parsed.metadata["Multiplier"] == "1.0000"


# --- Report.TXT, GC run: two signals, scientific notation, 'BB S' ----------------------------

GC_FID_ROWS = [
    (1, 2.824, "BB S", 0.0881, 45713.7, 7718.08594, 97.91525),
    (2, 4.057, "BB", 0.0928, 955.59546, 149.11475, 2.04681),
    (3, 9.209, "BB", 0.0817, 17.71351, 3.40485, 0.03794),
]
GC_TCD_ROWS = [(1, 2.828, "BB", 0.0864, 2608.15039, 444.79111, 100.0)]


def test_gc_report_every_printed_value() -> None:
    parsed = chemstation_txt.parse(chemstation_file(GC_RUN, "Report.TXT"), "Report.TXT", NO_OPTIONS)
    fid, tcd = parsed.signals
    assert (fid.name, fid.detector, fid.wavelength_nm) == ("FID1 A", "FID1 A", None)
    assert rows(fid.peaks) == GC_FID_ROWS
    assert fid.total_area == 46687.0  # printed 4.66870e4
    assert (tcd.name, tcd.detector) == ("TCD2 B", "TCD2 B")
    assert rows(tcd.peaks) == GC_TCD_ROWS  # Area% printed 1.000e2
    assert tcd.total_area == 2608.15039
    assert parsed.metadata["Signal 2 area unit"] == "25 uV*s"


def test_gc_report_run_facts() -> None:
    parsed = chemstation_txt.parse(chemstation_file(GC_RUN, "Report.TXT"), "Report.TXT", NO_OPTIONS)
    assert parsed.sample_name == "DFA-708-01"
    assert parsed.injection == 1
    assert parsed.vial == "1"
    assert parsed.metadata["Location"] == "Vial 1"
    assert parsed.instrument == "Instrument 1"
    assert parsed.operator == "Neumann_Group"
    assert parsed.acquired_at == datetime(2023, 7, 24, 21, 37, 10)
    assert parsed.injection_volume == "1000 µl"
    assert parsed.method == ("C:\\CHEM32\\1\\DATA\\GC_HAO 2023-07-24 21-36-55\\"
                             "HAO_NEUMANN_GC_VALVE_FOR_LIQUIDE.M")


# --- the CSV report set of the GC run -------------------------------------------------------

CSV_FID_ROWS = [
    (1, 2.82446193695069, "BB S", 0.088100828230381, 45713.66796875, 7718.0859375,
     97.9152452456867),
    (2, 4.05652809143067, "BB", 0.0927653312683106, 955.595458984375, 149.11474609375,
     2.04681374039123),
    (3, 9.2093152999878, "BB", 0.0816949978470803, 17.7135124206543, 3.40485453605652,
     0.0379410139220625),
]
CSV_TCD_ROWS = [(1, 2.827800989151, "BB", 0.0864105895161629, 2608.150390625, 444.791107177735,
                 100.0)]


def test_csv_set_every_value() -> None:
    parsed = chemstation_csv.parse_set(csv_set(), NO_OPTIONS)
    assert parsed.format == chemstation_csv.name
    assert parsed.encoding == "utf-16-le"
    fid, tcd = parsed.signals
    assert (fid.name, fid.detector) == ("FID1 A", "FID1 A")
    assert rows(fid.peaks) == CSV_FID_ROWS
    assert (tcd.name, tcd.detector) == ("TCD2 B", "TCD2 B")
    assert rows(tcd.peaks) == CSV_TCD_ROWS
    assert parsed.sample_name == "DFA-708-01"
    assert parsed.injection == 1
    assert parsed.vial == "1"
    assert parsed.instrument == "Instrument 1"
    assert parsed.acquired_at == datetime(2023, 7, 24, 21, 37, 10)
    assert parsed.injection_volume == "1000 µl"
    assert parsed.metadata["Data File"].endswith("\\GC_HAO 2023-07-24 21-36-55\\001F0101.D")
    # Report00.CSV puts the injection date under "Acq. Operator": kept as metadata, not as the
    # operator.
    assert parsed.metadata["Acq. Operator"] == "24-Jul-23, 21:37:10"
    assert parsed.operator is None


def test_csv_set_accepts_paths_and_ignores_other_files() -> None:
    files = {f"inbox\\run\\{GC_RUN}\\{name}": data for name, data in csv_set().items()}
    files[f"inbox/run/{GC_RUN}/Report.TXT"] = chemstation_file(GC_RUN, "Report.TXT")
    assert rows(chemstation_csv.parse_set(files, NO_OPTIONS).signals[0].peaks) == CSV_FID_ROWS


def test_lone_peak_file_reads_standard_columns() -> None:
    parsed = chemstation_csv.parse(chemstation_file(GC_RUN, "REPORT01.CSV"), "REPORT01.CSV",
                                   NO_OPTIONS)
    (signal,) = parsed.signals
    assert signal.name == "Signal 1"
    assert signal.detector is None
    assert rows(signal.peaks) == CSV_FID_ROWS
    assert parsed.sample_name is None
    assert "Report00.CSV" in parsed.metadata["Report set"]


def test_lone_header_file_is_explained() -> None:
    error = reject(chemstation_csv, chemstation_file(GC_RUN, "Report00.CSV"), "Report00.CSV")
    assert error.line == 1
    assert "header of a ChemStation CSV report set" in error.reason


def agrees(csv_value: float | None, printed: float | None) -> bool:
    """The TXT value is the CSV value rounded to the digits the TXT prints."""
    assert csv_value is not None and printed is not None
    return any(round(csv_value, digits) == printed for digits in range(11))


def test_csv_and_txt_of_one_run_agree() -> None:
    txt = chemstation_txt.parse(chemstation_file(GC_RUN, "Report.TXT"), "Report.TXT", NO_OPTIONS)
    csv = chemstation_csv.parse_set(csv_set(), NO_OPTIONS)
    for field in ("sample_name", "injection", "vial", "instrument", "acquired_at",
                  "injection_volume"):
        assert getattr(txt, field) == getattr(csv, field), field
    assert (txt.method or "").lower() == (csv.method or "").lower()  # Windows paths
    assert len(txt.signals) == len(csv.signals) == 2
    for t_signal, c_signal in zip(txt.signals, csv.signals, strict=True):
        assert (t_signal.name, t_signal.detector) == (c_signal.name, c_signal.detector)
        assert t_signal.peaks is not None and c_signal.peaks is not None
        assert len(t_signal.peaks) == len(c_signal.peaks)
        assert agrees(c_signal.total_area, t_signal.total_area)
        for t, c in zip(t_signal.peaks, c_signal.peaks, strict=True):
            assert (t.number, t.peak_type) == (c.number, c.peak_type)
            for field in ("rt_min", "width_min", "area", "height", "area_pct"):
                assert agrees(getattr(c, field), getattr(t, field)), (t.number, field)


# --- sniffing --------------------------------------------------------------------------------

def test_sniff_tells_the_files_apart() -> None:
    report = chemstation_file(GC_RUN, "Report.TXT")
    assert chemstation_txt.sniff(report, "Report.TXT", NO_OPTIONS) >= 90
    # content decides, not the name
    assert chemstation_txt.sniff(report, "anything.bin", NO_OPTIONS) >= 90
    assert chemstation_csv.sniff(report, "Report.TXT", NO_OPTIONS) == 0
    assert chemstation_txt.sniff(chemstation_file(LC_RUN, "Report.TXT"), "Report.TXT",
                                 NO_OPTIONS) >= 90
    for name, data in csv_set().items():
        assert chemstation_csv.sniff(data, name, NO_OPTIONS) >= 75, name
        assert chemstation_csv.sniff(data, "x.dat", NO_OPTIONS) >= 75, name
        assert chemstation_txt.sniff(data, name, NO_OPTIONS) == 0, name


@pytest.mark.parametrize("other", [
    ("agilent-1290", "12_Report.csv"),
    ("shimadzu-labsolutions", "new-shim-1.txt"),
    ("waters-empower", "results1844.arw"),
    ("thermo-chromeleon", "Adenosine Stadards_ 0.5 mM.txt"),
])
def test_sniff_leaves_other_formats_alone(other: tuple[str, str]) -> None:
    data = corpus_file(*other)
    assert chemstation_txt.sniff(data, other[1], NO_OPTIONS) < 30
    assert chemstation_csv.sniff(data, other[1], NO_OPTIONS) == 0


def test_sniff_never_fails_on_garbage() -> None:
    for data in (b"", b"\xff\xfe\x00", b"\x00\x01\x02", "Data File x".encode("utf-16")[:-1]):
        assert chemstation_txt.sniff(data, "Report.TXT", NO_OPTIONS) == 0
        assert chemstation_csv.sniff(data, "REPORT01.CSV", NO_OPTIONS) == 0


# --- rejections: a damaged report is refused with the line, never half-read ------------------

def test_table_cut_off_before_totals() -> None:
    lines = txt_lines(LC_RUN)[:35]  # up to peak 7 of 12
    error = reject(chemstation_txt, as_report(lines))
    assert "Totals" in error.reason
    assert error.line == 35


def test_file_cut_off_after_a_table() -> None:
    lines = txt_lines(GC_RUN)[:33]  # signal 1 complete, signal 2 and the rest gone
    error = reject(chemstation_txt, as_report(lines))
    assert "End of Report" in error.reason


def test_lost_row_is_caught_by_totals() -> None:
    lines = txt_lines(LC_RUN)
    del lines[33]  # peak 5
    error = reject(chemstation_txt, as_report(lines))
    assert error.line == 40  # the Totals line, one up
    assert "disagrees" in error.reason


def test_altered_value_is_caught_by_totals() -> None:
    lines = txt_lines(GC_RUN)
    lines[29] = lines[29].replace("955.59546", "955.69546")
    error = reject(chemstation_txt, as_report(lines))
    assert (error.line, "area" in error.reason) == (32, True)


def test_repeated_row_is_rejected() -> None:
    lines = txt_lines(LC_RUN)
    lines.insert(30, lines[29])
    error = reject(chemstation_txt, as_report(lines))
    assert error.line == 31


def test_unreadable_cell_is_rejected_with_its_line() -> None:
    lines = txt_lines(LC_RUN)
    lines[31] = lines[31].replace("12.55488", "12.5548x")
    error = reject(chemstation_txt, as_report(lines))
    assert error.line == 32


def test_value_across_a_column_boundary_is_rejected() -> None:
    lines = txt_lines(LC_RUN)
    lines[28] = lines[28].replace("  34.52074", "1234.52074").replace("0.0281 ", "0.02811")
    error = reject(chemstation_txt, as_report(lines))
    assert (error.line, "boundary" in error.reason) == (29, True)


def test_table_without_its_signal_line_is_rejected() -> None:
    lines = txt_lines(LC_RUN)
    lines[23] = "Signal DAD1 A, Sig=210,4 Ref=360,100"
    error = reject(chemstation_txt, as_report(lines))
    assert (error.line, "Signal N" in error.reason) == (28, True)


def test_unknown_column_is_rejected() -> None:
    lines = txt_lines(LC_RUN)
    lines[25] = lines[25].replace("Height", "Amount")
    error = reject(chemstation_txt, as_report(lines))
    assert (error.line, "Amount" in error.reason) == (26, True)


def test_odd_byte_count_is_a_parse_error() -> None:
    data = chemstation_file(LC_RUN, "Report.TXT")[:-1]
    assert isinstance(reject(chemstation_txt, data), ParseError)


@pytest.mark.parametrize(("index", "old", "new"), [
    (28, "   1", "   \u00b2"),  # a superscript digit: str.isdigit() says yes, int() says no
    (40, "3707.57174", "    0e999 "),  # finite zero, but its printed precision overflows
    (23, "Signal 1:", "Signal " + "9" * 5000 + ":"),
])
def test_numbers_python_would_choke_on_are_parse_errors(index: int, old: str, new: str) -> None:
    lines = txt_lines(LC_RUN)
    lines[index] = lines[index].replace(old, new)
    assert isinstance(reject(chemstation_txt, as_report(lines)), ParseError)


def test_csv_huge_peak_number_is_a_parse_error() -> None:
    data = ("\ufeff" + "9" * 5000 + ',1.0,"BB",0.1,1.0,1.0,100\r\n').encode("utf-16-le")
    assert reject(chemstation_csv, data, "REPORT01.CSV").line == 1


def test_csv_peak_file_cut_at_a_row_boundary() -> None:
    files = csv_set()
    text = files["REPORT01.CSV"].decode("utf-16")
    files["REPORT01.CSV"] = ("\ufeff" + "\r\n".join(text.split("\r\n")[:2])).encode("utf-16-le")
    with pytest.raises(ParseError) as caught:
        chemstation_csv.parse_set(files, NO_OPTIONS)
    assert caught.value.filename == "REPORT01.CSV"
    assert "add up" in caught.value.reason


def test_csv_peak_file_cut_mid_row() -> None:
    data = chemstation_file(GC_RUN, "REPORT01.CSV")[:-40]
    error = reject(chemstation_csv, data, "REPORT01.CSV")
    assert error.line == 3


def test_csv_set_missing_a_signal_file() -> None:
    files = csv_set()
    del files["REPORT02.CSV"]
    with pytest.raises(ParseError, match=r"REPORT02\.CSV"):
        chemstation_csv.parse_set(files, NO_OPTIONS)


def test_csv_set_with_an_unlisted_signal_file() -> None:
    files = csv_set()
    files["REPORT03.CSV"] = files["REPORT02.CSV"]
    with pytest.raises(ParseError, match=r"REPORT03\.CSV"):
        chemstation_csv.parse_set(files, NO_OPTIONS)


def test_csv_set_without_header() -> None:
    files = csv_set()
    del files["Report00.CSV"]
    with pytest.raises(ParseError, match=r"Report00\.CSV"):
        chemstation_csv.parse_set(files, NO_OPTIONS)


def test_csv_header_cut_off() -> None:
    files = csv_set()
    text = files["Report00.CSV"].decode("utf-16")
    files["Report00.CSV"] = ("\ufeff" + "\r\n".join(text.split("\r\n")[:28])).encode("utf-16-le")
    with pytest.raises(ParseError, match="Number of Columns"):
        chemstation_csv.parse_set(files, NO_OPTIONS)


def test_parsers_are_deterministic() -> None:
    data = chemstation_file(GC_RUN, "Report.TXT")
    first: ParsedFile = chemstation_txt.parse(data, "Report.TXT", NO_OPTIONS)
    assert chemstation_txt.parse(data, "Report.TXT", NO_OPTIONS) == first
    assert (chemstation_csv.parse_set(csv_set(), NO_OPTIONS)
            == chemstation_csv.parse_set(csv_set(), NO_OPTIONS))
