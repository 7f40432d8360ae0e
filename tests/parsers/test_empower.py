"""Waters Empower .arw: golden values from the real CR-only export, variants and rejections."""

from __future__ import annotations

from datetime import datetime

import pytest
from support.corpus import corpus_bytes

from worker.parsers import empower
from worker.parsers.base import ParsedFile, ParseError
from worker.parsers.options import NO_OPTIONS


@pytest.fixture(scope="module")
def data() -> bytes:
    """The real export (skipped when the corpus is absent, a failure under CI=true)."""
    return corpus_bytes('waters-empower', 'results1844.arw')


@pytest.fixture(scope="module")
def parsed(data: bytes) -> ParsedFile:
    return empower.parse(data, "results1844.arw", NO_OPTIONS)


def test_sniff_claims_it(data: bytes) -> None:
    assert b"\n" not in data  # CR-only line ends, as the README says
    assert empower.sniff(data, "results1844.txt", NO_OPTIONS) == 95


def test_rows_as_the_readme_prints(parsed: ParsedFile) -> None:
    (signal,) = parsed.signals
    trace = signal.trace
    assert trace is not None and trace.points == 6601
    assert (trace.times[0], trace.times[-1]) == (0.0, 55.0)
    assert (trace.times[6], trace.values[6]) == (0.05, 0.1827927)
    assert (trace.times[-2], trace.values[-2]) == (54.99167, -10.73982)
    assert trace.values[-1] == -10.73592
    assert all(b > a for a, b in zip(trace.times, trace.times[1:], strict=False))


def test_header_fields(parsed: ParsedFile) -> None:
    assert parsed.format == "empower"
    assert parsed.sample_name == "SEC_08"
    assert parsed.method == "Sup6Inc_10_300_TrpGFP_LineA"
    assert parsed.metadata == {
        "SampleName": "SEC_08", "Channel": "2475ChA ex280/em350",
        "Sample Set Name": "Exp105_ENaC_SEC",
        "Instrument Method Name": "Sup6Inc_10_300_TrpGFP_LineA"}
    (signal,) = parsed.signals
    assert signal.name == "2475ChA ex280/em350" and signal.wavelength_nm is None


def test_long_header_variant() -> None:
    names = ["SampleName", "Channel", "Sample Set Name", "Date Acquired", "Vial", "Injection",
             "Injection Volume", "Sample Type", "Acquired By", "System Name"]
    values = ["Std 1", "W2489 ChA 280nm", "Set 7", "9/7/2018 12:40:16 PM PDT", "1:A,3", "2",
              "10.00", "Standard", "jdoe", "HPLC-3"]
    text = "\t".join(f'"{n}"' for n in names) + "\r" + "\t".join(f'"{v}"' for v in values) + "\r"
    text += "0\t0\r0.5\t1.25\r1\t-2.5E-03\r"
    assert empower.sniff(text.encode(), "x.arw", NO_OPTIONS) == 95
    parsed = empower.parse(text.encode(), "x.arw", NO_OPTIONS)
    assert (parsed.sample_name, parsed.vial, parsed.injection, parsed.injection_volume) == (
        "Std 1", "1:A,3", 2, "10.00")
    assert (parsed.sample_kind, parsed.operator, parsed.instrument) == ("standard", "jdoe",
                                                                        "HPLC-3")
    assert parsed.acquired_at == datetime(2018, 9, 7, 12, 40, 16)
    (signal,) = parsed.signals
    assert signal.wavelength_nm == 280.0
    assert signal.trace is not None and list(signal.trace.values) == [0.0, 1.25, -0.0025]


def test_generic_two_column_trace_is_not_claimed() -> None:
    bare = b"0\t0\r0.008333333\t0\r0.01666667\t0.5\r"
    assert empower.sniff(bare, "results9.arw", NO_OPTIONS) == 0
    with pytest.raises(ParseError):
        empower.parse(bare, "results9.arw", NO_OPTIONS)
    unknown = b'"Time"\t"Signal"\r"a"\t"b"\r0\t1\r'
    assert empower.sniff(unknown, "x.arw", NO_OPTIONS) == 0


def test_corpus_dad_trace_is_not_claimed() -> None:
    name = "Blank_1.dx_DAD1A.CSV"
    data = corpus_bytes("agilent-1290", "20260113 153049", name)
    assert empower.sniff(data, name, NO_OPTIONS) == 0


def test_bad_row_names_its_line(data: bytes) -> None:
    bad = data.replace(b"\r0.1\t7.062675\r", b"\r0.1\t7.06x2675\r", 1)
    with pytest.raises(ParseError) as err:
        empower.parse(bad, "x.arw", NO_OPTIONS)
    assert err.value.line == 15 and "value" in err.value.reason


def test_cut_off_file_is_rejected(data: bytes) -> None:
    with pytest.raises(ParseError, match="cut off"):
        empower.parse(data[:-4], "x.arw", NO_OPTIONS)


def test_value_row_must_match_the_names(data: bytes) -> None:
    bad = data.replace(b'\t"Sup6Inc_10_300_TrpGFP_LineA"', b"", 1)
    with pytest.raises(ParseError) as err:
        empower.parse(bad, "x.arw", NO_OPTIONS)
    assert err.value.line == 2


def test_pda_3d_export_is_rejected_with_reason() -> None:
    text = ('"Sample Set Name"\t"SampleName"\r"Exp42"\t"Buffer"\r'
            "Wavelength\t  315\t320.001\rTime0\t  0\t0\r")
    with pytest.raises(ParseError, match="3D") as err:
        empower.parse(text.encode(), "x.arw", NO_OPTIONS)
    assert err.value.line == 3


def test_header_only_is_rejected() -> None:
    with pytest.raises(ParseError, match="no data rows"):
        empower.parse(b'"SampleName"\t"Channel"\r"12"\t"ChA"\r', "x.arw", NO_OPTIONS)


# The key/value header layout, as a public Empower reader documents it (HPLC-RS README, "Input
# Data": ``"SampleName"<TAB>"BF111"``, ``"System Name"``, ``"Sample Set Name"``, ``"Date
# Acquired"``, ``"Sample Set Start Date"`` lines, then time<TAB>value rows); its first rows
# follow, with the CR-only line ends of the real export in the corpus.
KEY_VALUE = ('"SampleName"\t"BF111"\r"System Name"\t"Alliance 2"\r'
             '"Sample Set Name"\t"DTtV_KW_07012022_GSL_NewHPLC"\r'
             '"Date Acquired"\t"1/7/2022 3:22:48 PM GMT"\r'
             '"Sample Set Start Date"\t"1/7/2022 2:44:26 PM GMT"\r'
             "0\t0.001693726\r0.01666667\t0.006185913\r0.03333333\t-0.0002410889\r")


def test_key_value_header_layout_is_read() -> None:
    data = KEY_VALUE.encode()
    assert empower.sniff(data, "BF111.arw", NO_OPTIONS) == 95
    parsed = empower.parse(data, "BF111.arw", NO_OPTIONS)
    assert (parsed.sample_name, parsed.instrument) == ("BF111", "Alliance 2")
    assert parsed.acquired_at == datetime(2022, 1, 7, 15, 22, 48)
    assert parsed.metadata["Sample Set Name"] == "DTtV_KW_07012022_GSL_NewHPLC"
    assert parsed.metadata["Sample Set Start Date"] == "1/7/2022 2:44:26 PM GMT"
    (signal,) = parsed.signals
    assert signal.trace is not None
    assert list(signal.trace.times) == [0, 0.01666667, 0.03333333]
    assert list(signal.trace.values) == [0.001693726, 0.006185913, -0.0002410889]


@pytest.mark.parametrize(("text", "line", "words"), [
    # a header line that is neither layout: the reason names both
    (KEY_VALUE.replace('"System Name"\t"Alliance 2"', '"System Name"\t"Alliance 2"\t"x"'), 2,
     "\"Key\"<TAB>\"Value\" lines"),
    (KEY_VALUE.replace("0.01666667\t0.006185913", "0.01666667\t0.0061x85913"), 7, "value"),
    (KEY_VALUE.split("0\t")[0], 5, "no data rows"),
])
def test_broken_key_value_export_names_its_line(text: str, line: int, words: str) -> None:
    with pytest.raises(ParseError) as err:
        empower.parse(text.encode(), "x.arw", NO_OPTIONS)
    assert err.value.line == line and words in err.value.reason


def test_a_sample_named_after_a_field_is_still_a_key_value_header() -> None:
    """A sample called "Acquired By" made the first line look like a two-field name row, and
    the export was rejected at its third header line (found by test_empower_round_trip)."""
    data = (b'"SampleName"\t"Acquired By"\r"Channel"\t"ChA 254nm"\r"System Name"\t"S"\r'
            b"0.000000\t0.5\r0.008333\t0.75\r")
    assert empower.sniff(data, "gen.arw", NO_OPTIONS) == 95
    parsed = empower.parse(data, "gen.arw", NO_OPTIONS)
    assert parsed.sample_name == "Acquired By"
    assert parsed.metadata["System Name"] == "S"
    (signal,) = parsed.signals
    assert signal.wavelength_nm == 254.0 and signal.trace is not None
    assert list(signal.trace.values) == [0.5, 0.75]


def test_a_two_field_export_whose_value_is_a_field_name_keeps_the_two_row_layout() -> None:
    data = b'"SampleName"\t"Channel"\r"Acquired By"\t"ChA 254nm"\r0.000000\t0.5\r0.008333\t0.75\r'
    parsed = empower.parse(data, "gen.arw", NO_OPTIONS)
    assert parsed.sample_name == "Acquired By"
    (signal,) = parsed.signals
    assert signal.wavelength_nm == 254.0
