"""Two-column traces: the Agilent DAD export and generic time,intensity files."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker import parsers
from worker.parsers import trace_csv
from worker.parsers.base import ParseError
from worker.parsers.options import NO_OPTIONS


def test_dad_export_becomes_a_full_trace(corpus: Path) -> None:
    path = corpus / "agilent-1290" / "20260113 153049" / "AOD9604_Std_100.dx_DAD1A.CSV"
    data = path.read_bytes()
    assert parsers.detect(data, path.name) is trace_csv
    (signal,) = trace_csv.parse(data, path.name, NO_OPTIONS).signals
    assert signal.name == "DAD1 A" and signal.detector == "DAD1"
    trace = signal.trace
    assert trace.points == len(data.splitlines()) == 30000
    first = data.splitlines()[0].decode().split(",")
    assert (trace.times[0], trace.values[0]) == (float(first[0]), float(first[1]))
    assert trace.times[-1] == pytest.approx(25.0, abs=0.001)
    assert trace.value_unit == "mAU"


def test_generic_trace_with_header_tab_and_utf16() -> None:
    text = "Time (min)\tIntensity (mV)\r\n0\t1,5\r\n0,5\t2,25\r\n"
    data = b"\xff\xfe" + text.encode("utf-16-le")
    (signal,) = trace_csv.parse(data, "run.txt", NO_OPTIONS).signals
    assert list(signal.trace.times) == [0.0, 0.5]
    assert list(signal.trace.values) == [1.5, 2.25]
    assert signal.trace.value_unit == "mV"


@pytest.mark.parametrize(("body", "line", "words"), [
    (b"0,1\n0.1,2\n0.2\n", 3, "expected 2 columns"),
    (b"0,1\n0.1,x\n", 2, "not a number"),
    (b"0,1\n0.1,nan\n", 2, "not a number"),
    (b"0,1\n0.2,2\n0.1,3\n", 3, "backwards"),
])
def test_bad_rows_name_their_line(body: bytes, line: int, words: str) -> None:
    with pytest.raises(ParseError) as err:
        trace_csv.parse(body, "t.csv", NO_OPTIONS)
    assert err.value.line == line and words in err.value.reason


# The ChemStation/MassHunter ``tic_front.csv`` dump: the data file's path and time on the first
# line, ``Start of data points``, then ``time,intensity`` rows. The layout is as public parsers of
# these dumps document it (the excerpt is written here, not copied from a file).
TIC_FRONT = (b"D:\\MassHunter\\Data\\sample_mix .D Tue Dec 17 10:13:57 2019\r\n"
             b"Start of data points\r\n0.09353,11398\r\n0.10187,11436\r\n0.11020,11502\r\n")


def test_preamble_before_the_rows_is_kept_as_metadata() -> None:
    assert parsers.detect(TIC_FRONT, "tic_front.csv") is trace_csv
    parsed = trace_csv.parse(TIC_FRONT, "tic_front.csv", NO_OPTIONS)
    (signal,) = parsed.signals
    assert list(signal.trace.times) == [0.09353, 0.10187, 0.11020]
    assert list(signal.trace.values) == [11398, 11436, 11502]
    assert parsed.metadata["preamble.1"].startswith("D:\\MassHunter\\Data\\sample_mix .D")
    assert parsed.metadata["preamble.2"] == "Start of data points"


def test_preamble_then_header_names_the_columns() -> None:
    data = b"C:\\Chem32\\1\\DATA\\RUN1.D\nStart of data points\ntime,intensity (mV)\n0,1\n0.5,2\n"
    (signal,) = trace_csv.parse(data, "run.csv", NO_OPTIONS).signals
    assert signal.name == "intensity (mV)" and signal.trace.value_unit == "mV"
    assert list(signal.trace.values) == [1, 2]


# Whitespace-separated points ending with the ``EOT`` line a ChemStation export macro writes.
EOT_TRACE = b"  0.00000   -0.1234\r\n  0.00667    0.2500\r\n  0.01333    1.0000\r\nEOT\r\n"


def test_whitespace_trace_ending_with_eot() -> None:
    assert parsers.detect(EOT_TRACE, "signal.txt") is trace_csv
    parsed = trace_csv.parse(EOT_TRACE, "signal.txt", NO_OPTIONS)
    (signal,) = parsed.signals
    assert list(signal.trace.times) == [0.0, 0.00667, 0.01333]
    assert list(signal.trace.values) == [-0.1234, 0.25, 1.0]
    assert parsed.metadata["terminator"] == "EOT"


@pytest.mark.parametrize(("data", "line", "words"), [
    (TIC_FRONT.replace(b"0.10187,11436", b"0.10187,11x36"), 4, "not a number"),
    (TIC_FRONT.replace(b"0.09353,11398", b"0.09353,"), 3, "row of two numbers"),
    (TIC_FRONT.replace(b"0.11020,11502\r\n", b""), None, None),
    (EOT_TRACE.replace(b"  0.00667    0.2500", b"EOT"), 2, "found 1: 'EOT'"),
    (EOT_TRACE + b"  0.02000    1.5\r\n", 4, "found 1: 'EOT'"),
    (EOT_TRACE.replace(b"    1.0000", b""), 3, "expected 2 columns"),
    (b"Start of data points\r\nEOT\r\n", 2, "no data rows"),
])
def test_broken_preamble_or_terminated_trace_names_its_line(
        data: bytes, line: int | None, words: str | None) -> None:
    if words is None:  # the control: a shorter trace is still a trace
        assert trace_csv.parse(data, "t.csv", NO_OPTIONS).signals[0].trace.points == 2
        return
    with pytest.raises(ParseError) as err:
        trace_csv.parse(data, "t.csv", NO_OPTIONS)
    assert err.value.line == line and words in err.value.reason
