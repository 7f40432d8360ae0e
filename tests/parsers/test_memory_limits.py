"""Files are read within a bounded memory: big traces a slice at a time (from bytes or an mmap),
and what would not fit the limits is rejected naming the limit and the setting that raises it."""

from __future__ import annotations

import mmap
from pathlib import Path

import pytest

from worker.parsers import agilent_openlab, detect, head, trace_csv
from worker.parsers.base import ParseError
from worker.parsers.options import NO_OPTIONS, ParserOptions

NAME = "BIG.dx_DAD1A.CSV"


def _trace(points: int, *, preamble: bool = True, eot: bool = True) -> bytes:
    rows = "".join(f"{(i + 1) / 1200!r},{(i % 97) / 7!r}\r\n" for i in range(points))
    start = "C:\\Chem32\\1\\DATA\\RUN 1.D\r\nStart of data points\r\n" if preamble else ""
    return (start + rows + ("EOT\r\n\r\n\r\n" if eot else "")).encode("ascii")


def test_a_trace_far_bigger_than_a_slice_keeps_every_point() -> None:
    data = _trace(60_000)
    assert len(data) > 4 * 65536  # far more than the head and tail looked at
    parsed = trace_csv.parse(data, NAME, NO_OPTIONS)
    (signal,) = parsed.signals
    assert signal.trace is not None and signal.trace.points == 60_000
    assert signal.trace.times[-1] == 60_000 / 1200
    assert signal.trace.values[59_999] == (59_999 % 97) / 7
    assert parsed.metadata == {"preamble.1": "C:\\Chem32\\1\\DATA\\RUN 1.D",
                               "preamble.2": "Start of data points", "terminator": "EOT"}


def test_an_mmap_is_read_like_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace_csv, "CHUNK_BYTES", 65536)
    path = tmp_path / NAME
    path.write_bytes(_trace(50_000, preamble=False))
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        from_map = trace_csv.parse(mm, NAME, NO_OPTIONS).signals[0].trace
        assert detect(mm, NAME).name == "trace-csv"
    from_bytes = trace_csv.parse(path.read_bytes(), NAME, NO_OPTIONS).signals[0].trace
    assert from_map is not None and from_bytes is not None
    assert from_map.times == from_bytes.times and from_map.values == from_bytes.values


def test_a_bad_row_deep_in_a_big_trace_is_named_by_its_line() -> None:
    rows = _trace(60_000, preamble=False, eot=False).split(b"\r\n")
    rows[45_000] = b"12.5,oops"
    with pytest.raises(ParseError, match="value 'oops' is not a number") as caught:
        trace_csv.parse(b"\r\n".join(rows), NAME, NO_OPTIONS)
    assert caught.value.line == 45_001


def test_time_going_back_across_slices_is_refused() -> None:
    rows = _trace(60_000, preamble=False, eot=False).split(b"\r\n")
    rows[50_000] = b"0.5,1.0"
    with pytest.raises(ParseError, match="time goes backwards") as caught:
        trace_csv.parse(b"\r\n".join(rows), NAME, NO_OPTIONS)
    assert caught.value.line == 50_001


def test_too_many_points_names_the_limit_and_setting() -> None:
    options = ParserOptions(max_trace_points=1_000)
    with pytest.raises(ParseError, match=r"more than 1,000 points in the trace.*"
                                         r"max_trace_points = 1000") as caught:
        trace_csv.parse(_trace(5_000), NAME, options)
    assert caught.value.line is not None
    assert trace_csv.parse(_trace(1_000), NAME, options).signals[0].trace is not None


def _report(peaks: int) -> bytes:
    header = "Height,Area,Area%,Peak Begin Time,Peak End Time,RT [min]"
    rows = [f"1.0,1.0000,{100 / peaks:.6f},{i / 100:.3f},{i / 100 + 0.005:.3f},"
            f"{i / 100 + 0.002:.3f}" for i in range(peaks)]
    return "\n".join(["Acquisition Method:,m.amx", header, *rows,
                      f"Sum,{peaks:.4f},,,,", ""]).encode()


def test_too_many_peaks_names_the_limit_and_setting() -> None:
    options = ParserOptions(max_peaks_per_table=500)
    with pytest.raises(ParseError, match=r"more than 500 peaks in the table.*"
                                         r"raise max_peaks_per_table") as caught:
        agilent_openlab.parse(_report(501), "big_Report.csv", options)
    assert caught.value.line == 503
    (signal,) = agilent_openlab.parse(_report(500), "big_Report.csv", options).signals
    assert signal.peaks is not None and len(signal.peaks) == 500


def test_sniffers_see_only_the_head_cut_at_a_line_end() -> None:
    data = _trace(100_000)
    first = head(data)
    assert len(first) <= 65536 and first.endswith(b"\r\n") and data.startswith(first)
    utf16 = "\ufeff" + "x" * 20_000 + "\r\n" + "y" * 40_000
    cut = head(utf16.encode("utf-16-le"))
    assert cut.decode("utf-16-le").endswith("\r\n")


def test_every_format_keeps_the_limits_through_the_registry() -> None:
    """Parsers that read a file whole are held to the limits too (the registry counts)."""
    from pathlib import Path as _Path

    from worker import parsers

    txt = _Path(__file__).parents[1] / "corpus" / "agilent-chemstation" / "001F0101.D" / \
        "Report.TXT"
    options = ParserOptions(max_peaks_per_table=2)
    with pytest.raises(ParseError, match=r"more than 2 peaks in the table of 'FID1 A'.*"
                                         r"max_peaks_per_table"):
        parsers.parse(txt.read_bytes(), "Report.TXT", options)
    assert parsers.parse(txt.read_bytes(), "Report.TXT", ParserOptions(max_peaks_per_table=3))


def test_a_big_utf16_file_cut_short_names_where_decoding_stops() -> None:
    """Read a chunk at a time, not decoded whole, and still the line where it breaks."""
    from worker import parsers

    text = "\ufeff" + "".join(f"note {i}: nothing a parser knows\r\n" for i in range(5000))
    data = text.encode("utf-16-le")[:-1]  # an odd byte count: cut inside the last character
    assert len(data) > 65536
    with pytest.raises(ParseError, match="cannot decode as utf-16-le") as caught:
        parsers.parse(data, "notes.txt")
    assert caught.value.line == 5000  # the last line, its line end cut in half
