"""Shimadzu LabSolutions ASCII: golden values from the real export, and the rejections."""

from __future__ import annotations

from datetime import datetime

import pytest
from support.corpus import corpus_bytes

from worker.parsers import shimadzu
from worker.parsers.base import ParsedFile, ParseError
from worker.parsers.options import NO_OPTIONS


@pytest.fixture(scope="module")
def data() -> bytes:
    """The real export (skipped when the corpus is absent, a failure under CI=true)."""
    return corpus_bytes('shimadzu-labsolutions', 'new-shim-1.txt')


@pytest.fixture(scope="module")
def parsed(data: bytes) -> ParsedFile:
    return shimadzu.parse(data, "new-shim-1.txt", NO_OPTIONS)


def _line_of(data: bytes, needle: bytes) -> int:
    return data[:data.index(needle)].count(b"\n") + 1


def test_sniff_claims_it(data: bytes) -> None:
    assert shimadzu.sniff(data, "renamed.dat", NO_OPTIONS) == 95


def test_run_facts(parsed: ParsedFile) -> None:
    assert parsed.format == "shimadzu" and parsed.encoding == "utf-8"
    assert parsed.sample_name == "Tommy-S-1-031022"
    assert parsed.sample_kind == "sample"
    assert parsed.vial == "21"
    assert parsed.injection_volume == "20"
    assert parsed.operator == "System Administrator"
    assert parsed.instrument == "HPLC1"
    assert parsed.method == r"C:\LabSolutions\Data\Shivani\FSEC_AHisP_BTrp_C260nm_Superose5_150.lcm"
    assert parsed.acquired_at == datetime(2022, 3, 10, 21, 53, 59)
    assert parsed.metadata["Header.Version"] == "5.98"
    assert parsed.metadata["Sample Information.Sample Type"] == "0:Unknown"
    assert parsed.metadata["Original Files.Batch File"].endswith("S200-FSEC-RNAP-031022.lcb")
    assert "ignored_sections" not in parsed.metadata


def test_signals_and_pairing(parsed: ParsedFile) -> None:
    assert [s.name for s in parsed.signals] == [
        "Detector A", "Detector B", "AD2", "Pump A Pressure", "Pump A Degasser Pressure",
        "Sample Cooler Temp.", "RF B Cell Temp."]
    assert [s.detector for s in parsed.signals] == ["Detector A", "Detector B", "UV"] + [
        "status"] * 4
    for signal in parsed.signals[:3]:
        assert signal.trace is not None and signal.trace.points == 2401
        assert signal.trace.value_unit == "0.001 mV"
        assert (signal.trace.times[0], signal.trace.times[-1]) == (0.0, 20.0)
    for signal in parsed.signals[3:]:
        assert signal.peaks is None and signal.trace is not None and signal.trace.points == 1201


def test_peak_counts_as_the_readme_prints(parsed: ParsedFile) -> None:
    counts = {s.name: len(s.peaks) for s in parsed.signals if s.peaks is not None}
    assert counts == {"Detector A": 11, "Detector B": 41, "AD2": 6}


def test_largest_peak_in_detector_b(parsed: ParsedFile) -> None:
    b = parsed.signals[1]
    assert b.peaks is not None
    main = max(b.peaks, key=lambda p: p.area)
    assert (main.number, main.rt_min, main.area) == (10, 6.934, 157855975.0)
    assert main.area_pct is not None and round(main.area_pct, 2) == 64.79
    assert (main.height, main.begin_min, main.end_min, main.peak_type) == (
        1232316.0, 5.867, 9.675, "V")
    assert main.line == 104
    assert b.total_area == 243634346.0


def test_area_percent_is_derived_per_table(parsed: ParsedFile) -> None:
    for signal in parsed.signals[:3]:
        assert signal.peaks is not None and signal.total_area is not None
        assert sum(p.area for p in signal.peaks) == signal.total_area
        assert sum(p.area_pct or 0 for p in signal.peaks) == pytest.approx(100.0, abs=1e-9)


def test_more_rows_from_the_file(parsed: ParsedFile) -> None:
    a, _, ad2 = parsed.signals[:3]
    assert a.peaks is not None and ad2.peaks is not None
    first = a.peaks[0]
    assert (first.number, first.rt_min, first.area, first.height) == (1, 4.439, 2451596.0, 48407.0)
    assert first.peak_type is None and first.name is None
    assert (ad2.peaks[-1].rt_min, ad2.peaks[-1].area) == (11.134, 5695.0)
    assert a.trace is not None and list(a.trace.values[:6]) == [2, 2, 1, 1, 0, -0.0]
    assert a.trace.values[-1] == 3657
    assert ad2.trace is not None and ad2.trace.values[0] == -5228
    pump = parsed.signals[3]
    assert pump.trace is not None and pump.trace.value_unit == "0.0980665 MPa"
    assert list(pump.trace.values[:4]) == [18.5, 18.5, 18.7, 18.9]
    cell = parsed.signals[6]
    assert cell.trace is not None and cell.trace.value_unit == "C"
    assert cell.trace.values[-1] == 30.05


def test_comma_delimited_export_reads_the_same(data: bytes, parsed: ParsedFile) -> None:
    comma = shimadzu.parse(data.replace(b"\t", b","), "x.txt", NO_OPTIONS)
    assert comma.signals == parsed.signals


def test_peak_count_mismatch_is_rejected(data: bytes) -> None:
    with pytest.raises(ParseError) as err:
        shimadzu.parse(data.replace(b"# of Peaks\t41", b"# of Peaks\t42"), "x.txt", NO_OPTIONS)
    assert "42 peaks" in err.value.reason and "41 rows" in err.value.reason
    assert err.value.line == _line_of(data, b"[Peak Table(AD2)]") - 2  # the last row read


def test_missing_peak_row_is_rejected(data: bytes) -> None:
    row = b"17\t14.783\t14.758\t14.992\t151344"
    start = data.index(row)
    cut = data[:start] + data[data.index(b"\n", start) + 1:]
    with pytest.raises(ParseError, match="states 41 peaks"):
        shimadzu.parse(cut, "x.txt", NO_OPTIONS)


def test_bad_trace_value_names_its_line(data: bytes) -> None:
    bad = data.replace(b"0.04167\t-0\r\n", b"0.04167\t-0x\r\n", 1)
    with pytest.raises(ParseError) as err:
        shimadzu.parse(bad, "x.txt", NO_OPTIONS)
    assert err.value.line == _line_of(data, b"0.04167\t-0\r\n")
    assert "Intensity" in err.value.reason


def test_truncated_file_is_rejected(data: bytes) -> None:
    with pytest.raises(ParseError, match="cut off"):
        shimadzu.parse(data[:data.index(b"0.04167\t-0\r\n") + 5], "x.txt", NO_OPTIONS)
    with pytest.raises(ParseError, match="# of Points"):
        shimadzu.parse(data[:data.index(b"\r\n10.00000\t") + 2], "x.txt", NO_OPTIONS)


def test_bad_peak_cell_names_its_line(data: bytes) -> None:
    bad = data.replace(b"157855975", b"157855,975")
    with pytest.raises(ParseError) as err:
        shimadzu.parse(bad, "x.txt", NO_OPTIONS)
    assert err.value.line == 104


SMALL = (
    "[Header]\r\nApplication Name\tLabSolutions\r\nVersion\t5.97\r\nCode Page\t932\r\n\r\n"
    "[Sample Information]\r\nSample Name\t{name}\r\nSample Type\t1:Standard\r\n"
    "Acquired\t2024/05/06 14:03:02\r\n\r\n"
    "[Peak Table(PDA-Ch1)]\r\n# of Peaks\t0\r\n\r\n"
    "[LC Chromatogram(PDA-Ch1)]\r\n# of Points\t3\r\nIntensity Units\tmAU\r\n"
    "Intensity Multiplier\t1\r\nWavelength(nm)\t254\r\nR.Time (min)\tIntensity\r\n"
    "0.0\t1\r\n0.5\t2\r\n1.0\t3\r\n")


def test_declared_code_page_and_empty_peak_table() -> None:
    parsed = shimadzu.parse(SMALL.format(name="試料-1").encode("shift_jis"), "x.txt", NO_OPTIONS)
    assert parsed.encoding == "cp932" and parsed.sample_name == "試料-1"
    assert parsed.sample_kind == "standard"
    assert parsed.acquired_at == datetime(2024, 5, 6, 14, 3, 2)
    (signal,) = parsed.signals
    assert (signal.name, signal.peaks, signal.total_area, signal.wavelength_nm) == (
        "PDA-Ch1", [], 0.0, 254.0)
    assert signal.trace is not None and signal.trace.value_unit == "mAU"
    assert list(signal.trace.values) == [1.0, 2.0, 3.0]


def test_decimal_comma_tab_export() -> None:
    text = SMALL.format(name="x").replace("0.5\t2", "0,5\t2").replace("0.0\t", "0,0\t").replace(
        "1.0\t", "1,0\t")
    (signal,) = shimadzu.parse(text.encode(), "x.txt", NO_OPTIONS).signals
    assert signal.trace is not None and list(signal.trace.times) == [0.0, 0.5, 1.0]


def test_undecodable_declared_file_is_rejected() -> None:
    with pytest.raises(ParseError):
        shimadzu.parse(SMALL.format(name="x").encode() + b"\x00\xff", "x.txt", NO_OPTIONS)


def test_file_without_signals_is_rejected() -> None:
    with pytest.raises(ParseError, match="no peak table"):
        shimadzu.parse(b"[Header]\r\nApplication Name\tLabSolutions\r\n", "x.txt", NO_OPTIONS)


@pytest.mark.parametrize("line", [b"Wavelength(nm)\tnm\r\n", b"Wavelength(nm)\t\r\n",
                                  b"Wavelength(nm)\t-\r\n"])
def test_wavelength_line_without_a_number_keeps_every_peak(
        data: bytes, parsed: ParsedFile, line: bytes) -> None:
    """The real three-detector export, its AD2 (RI-type, no wavelength) chromatogram given the
    unit-only ``Wavelength(nm)`` line LabSolutions writes for such a detector: the file used to
    be rejected whole (``Wavelength(nm) 'nm' is not a number``)."""
    at = data.index(b"R.Time (min)", data.index(b"[LC Chromatogram(AD2)]"))
    edited = shimadzu.parse(data[:at] + line + data[at:], "x.txt", NO_OPTIONS)
    assert [s.peaks for s in edited.signals] == [s.peaks for s in parsed.signals]
    ad2 = next(s for s in edited.signals if s.name == "AD2")
    assert ad2.wavelength_nm is None
    assert edited.metadata["LC Chromatogram(AD2).Wavelength(nm)"] == line.split(b"\t")[1].strip(
        ).decode()


def test_wavelength_line_with_a_number_is_read(data: bytes) -> None:
    at = data.index(b"R.Time (min)", data.index(b"[LC Chromatogram(AD2)]"))
    edited = shimadzu.parse(data[:at] + b"Wavelength(nm)\t254\r\n" + data[at:], "x.txt",
                            NO_OPTIONS)
    assert next(s for s in edited.signals if s.name == "AD2").wavelength_nm == 254


# A real two-detector export (UV channels A-Ch1/A-Ch2 and an RI detector B), an excerpt
# (tests/corpus/README.md): unit-only Wavelength(nm) lines, a peak table named for the detector
# (Detector B) beside a chromatogram named for its channel (Detector B-Ch1), six status traces,
# compound results, and slash dates only the file's own 21/08/2024 settles as day-first.
MULTI = "STD 1 100-excerpt.txt"


@pytest.fixture(scope="module")
def multi() -> bytes:
    return corpus_bytes("shimadzu-labsolutions", MULTI)


def test_real_multi_detector_export_every_table_read(multi: bytes) -> None:
    parsed = shimadzu.parse(multi, MULTI, NO_OPTIONS)
    assert (parsed.sample_name, parsed.sample_kind, parsed.level_label, parsed.vial) == (
        "STD 1 100", "standard", "1", "29")
    assert parsed.instrument == "HPLC RID" and parsed.injection_volume == "10"
    assert parsed.method == r"C:\LabSolutions\Data\Tom\fermentation_nobutanol-96.lcm"
    detectors = [s for s in parsed.signals if s.detector != "status"]
    assert [(s.name, len(s.peaks or []), s.wavelength_nm) for s in detectors] == [
        ("Detector A-Ch1", 2, None), ("Detector A-Ch2", 7, None), ("Detector B", 7, None)]
    assert all(s.trace is not None and s.trace.points == 40 for s in detectors)
    assert parsed.metadata["LC Chromatogram(Detector A-Ch1).Wavelength(nm)"] == "nm"
    ri = detectors[2]
    assert ri.peaks is not None and ri.total_area == 2737423
    assert [(p.rt_min, p.area, p.height, p.name) for p in ri.peaks][3:] == [
        (11.395, 904583, 49624, "Glucose"), (15.593, 493483, 22569, "Lactate"),
        (18.244, 272632, 11305, "Acetate"), (26.134, 1061968, 31468, "Ethanol")]
    assert [p.peak_type for p in ri.peaks] == [None, "V", None, "S", None, None, None]
    status = [s.name for s in parsed.signals if s.detector == "status"]
    assert status == ["Pump A Pressure", "RF A Cell Temp.", "RF B Cell Temp.", "Oven Temp.",
                      "Room Temp.", "Sample Cooler Temp."]
    assert parsed.metadata["ignored_sections"] == "Compound Results(Detector B)"


def test_real_export_dates_settled_by_the_files_own_output_date(multi: bytes) -> None:
    """``Acquired 02/08/2023`` alone could be 8 February or 2 August; the file's ``Output Date
    21/08/2024`` can only be day-first, so it is 2 August, unflagged."""
    parsed = shimadzu.parse(multi, MULTI, NO_OPTIONS)
    assert parsed.acquired_at == datetime(2023, 8, 2, 17, 8, 21) and parsed.flags == []
    alone = multi.replace(b"Output Date\t21/08/2024\n", b"")
    unsettled = shimadzu.parse(alone, MULTI, NO_OPTIONS)
    assert unsettled.acquired_at is None and len(unsettled.flags) == 1
    assert unsettled.metadata["Sample Information.Acquired"] == "02/08/2023 17:08:21"
    configured = shimadzu.parse(alone, MULTI, NO_OPTIONS.model_copy(
        update={"date_order": "month-first"}))
    assert configured.acquired_at == datetime(2023, 2, 8, 17, 8, 21)


def test_real_export_a_missing_peak_row_is_rejected_by_its_count(multi: bytes) -> None:
    row = b"5\t15.593\t14.750\t16.650\t493483\t"
    cut = b"".join(line for line in multi.splitlines(keepends=True) if not line.startswith(row))
    with pytest.raises(ParseError) as err:
        shimadzu.parse(cut, MULTI, NO_OPTIONS)
    assert "[Peak Table(Detector B)] states 7 peaks" in err.value.reason


def test_real_export_a_missing_status_row_is_rejected_by_its_count(multi: bytes) -> None:
    at = multi.index(b"[LC Status Trace(Oven Temp.)]")
    row = multi.index(b"0.31667\t55.01\n", at)
    with pytest.raises(ParseError) as err:
        shimadzu.parse(multi[:row] + multi[row + len(b"0.31667\t55.01\n"):], MULTI, NO_OPTIONS)
    assert "[LC Status Trace(Oven Temp.)] states 20 points" in err.value.reason
