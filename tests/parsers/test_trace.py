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
