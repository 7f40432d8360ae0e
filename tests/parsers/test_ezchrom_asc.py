"""EZChrom/EZStart ASCII export: the real excerpt read exactly, broken variants rejected by line,
and generated files read back point for point."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.corpus import corpus_bytes
from support.fuzz import FUZZ
from support.pipeline import Pipeline

from worker import parsers
from worker.parsers import ezchrom_asc
from worker.parsers.base import ParseError
from worker.parsers.options import NO_OPTIONS
from worker.record.models import Chromatogram, Injection, Sample

REAL = "ezchrom-asc/2023-06-29-014-excerpt.dat.asc"
CH1 = [16418, 16481, 16445, 16386, 16316, 16336, 16378, 16391, 16391, 16378, 16366, 16379,
       16400, 16416, 16416, 16422, 16425, 16427, 16409, 16393, 16380, 16377, 16369, 16366,
       16367, 16382, 16379, 16369, 16360, 16361, 16359, 16350, 16337, 16328, 16323, 16331,
       16335, 16339, 16332, 16329]
CH2 = [494041, 493537, 493060, 492654, 492266, 491942, 491652, 491381, 491093, 490744, 490375,
       489994, 489653, 489355, 489334, 490098, 491667, 492654, 492333, 490159, 486853, 482836,
       478513, 474533, 470633, 467278, 464341, 461828, 459386, 456917, 454545, 452346, 450340,
       448523, 446880, 445406, 444127, 443050, 442031, 441129]
HEADER_LINES = 13


def _real() -> bytes:
    return corpus_bytes(REAL)


def _with(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new, 1)


def test_real_export_every_point_scaled_and_timed() -> None:
    parsed = ezchrom_asc.parse(_real(), "2023-06-29-014.dat.asc", NO_OPTIONS)
    assert parsed.format == "ezchrom-asc" and parsed.encoding == "cp1252"
    assert parsed.sample_name == "2023-06-29-Ni5silica-methanation"
    assert parsed.method == r"Z:\methods\polyarc+TCD_PK_09b_analysis.met"
    assert parsed.operator == "System"
    assert parsed.acquired_at == datetime(2023, 6, 29, 17, 31, 3)
    assert parsed.metadata["Data File"] == (
        r"z:\results\2023-06-29-ni5silica-methanation\2023-06-29-ni5silica-methanation-014.dat")
    one, two = parsed.signals
    assert (one.name, two.name) == ("Channel 1", "Channel 2")
    assert one.trace is not None and two.trace is not None
    assert (one.trace.value_unit, two.trace.value_unit) == ("pA", "25 µV")
    # Raw counts times the printed Y multiplier; time = i / 10 Hz * 0.016667 (minutes).
    assert list(one.trace.values) == [v * 0.000130208 for v in CH1]
    assert list(two.trace.values) == [v * 0.000130208 for v in CH2]
    for trace in (one.trace, two.trace):
        assert trace.time_unit == "min"
        assert list(trace.times) == [i / 10.0 * 0.016667 for i in range(40)]
        assert trace.times[-1] == pytest.approx(0.0650013, abs=1e-12)  # 3.9 s


def test_registry_picks_it_and_lists_it() -> None:
    data = _real()
    assert ezchrom_asc.sniff(data, "x.dat.asc", NO_OPTIONS) == 100
    assert parsers.detect(data, "x.dat.asc").name == "ezchrom-asc"


@pytest.mark.parametrize(("old", "new", "line", "reason"), [
    # One row fewer than declared: the channel boundary is unknowable, so no padding.
    (b"441129\n", b"", HEADER_LINES + 79,
     "declares 40 + 40 = 80 data points, the file has 79 rows"),
    # One row more than declared.
    (b"441129\n", b"441129\n441000\n", HEADER_LINES + 81,
     "declares 40 + 40 = 80 data points, the file has 81 rows"),
    (b"16481\n", b"16,481\n", HEADER_LINES + 2, "channel 1 point 2 '16,481' is not a number"),
    (b"493537\n", b"n.a.\n", HEADER_LINES + 42, "channel 2 point 2 'n.a.' is not a number"),
    (b"Total Data Points:\t40\t40\tPts.", b"Total Data Points:\t40\tPts.", 9,
     "'Total Data Points:' gives 1 values for 2 channels"),
    (b"Sampling Rate:\t10.000000\t10.000000\tHz", b"Sampling Rate:\t10.000000\t10.000000", 8,
     "'Sampling Rate:' should end with 'Hz'"),
    (b"Sampling Rate:\t10.000000", b"Sampling Rate:\t0", 8, "Sampling Rate 0.0 Hz is not positive"),
    (b"X Axis Title:\tMinutes", b"X Axis Title:\tFurlongs", 10,
     "X Axis Title 'Furlongs': expected Minutes or Seconds"),
    (b"Y Axis Multiplier:\t0.000130208\t", b"Y Axis Multiplier:\tx\t", 13,
     "Y Axis Multiplier 'x' is not a number"),
    (b"Total Data Points:\t40\t", b"Total Data Points:\t40.5\t", 9,
     "Total Data Points '40.5' is not a count"),
])
def test_broken_variants_rejected_with_line(old: bytes, new: bytes, line: int,
                                            reason: str) -> None:
    with pytest.raises(ParseError) as caught:
        ezchrom_asc.parse(_with(_real(), old, new), "bad.asc", NO_OPTIONS)
    assert reason in caught.value.reason
    assert caught.value.line == line


def test_cut_off_last_row_rejected() -> None:
    with pytest.raises(ParseError, match="no line end"):
        ezchrom_asc.parse(_real()[:-1], "cut.asc", NO_OPTIONS)


def test_missing_multiplier_is_named() -> None:
    data = _with(_real(), b"X Axis Multiplier:\t0.016667\t0.016667\n", b"")
    assert ezchrom_asc.sniff(data, "x.asc", NO_OPTIONS) == 60
    with pytest.raises(ParseError, match="no 'X Axis Multiplier:' line"):
        ezchrom_asc.parse(data, "x.asc", NO_OPTIONS)



# A real EZStart export (an excerpt, tests/corpus/README.md): a time axis in seconds (X Axis
# Multiplier 1), mVolts, and the Vial Number and Volume lines the methanation export lacks.
EZSTART = "ezchrom-asc/05_25_D-excerpt.asc"


def test_real_ezstart_export_in_seconds_with_its_vial() -> None:
    parsed = ezchrom_asc.parse(corpus_bytes(EZSTART), "05_25_D.asc", NO_OPTIONS)
    assert (parsed.sample_name, parsed.vial, parsed.injection_volume) == ("05_25_D", "1", "100")
    assert parsed.method == r"C:\EZStart\Projects\Default\Method\Arpita\TRP_A_GFP_B_50minb.met"
    assert parsed.acquired_at == datetime(2018, 4, 18, 7, 38, 31)
    assert parsed.metadata["Pretreat Name"] == "(None)"
    one, two = parsed.signals
    assert one.trace is not None and two.trace is not None
    assert (one.trace.value_unit, two.trace.value_unit) == ("mVolts", "mVolts")
    # 2 Hz, seconds: point i at i / 2 s = i / 120 min; counts times the Y multiplier 0.001.
    assert list(one.trace.times) == [i / 2.0 * 1.0 / 60 for i in range(20)]
    assert list(one.trace.values) == [v * 0.001 for v in
                                      (0, -1, 0, 0, -3, -7, -10, -12, -12, -13, -12, -7, -2, 1,
                                       4, 7, 8, 9, 8, 6)]
    assert list(two.trace.values) == [0.003] + [0.0] * 19


def test_real_ezstart_export_a_row_short_is_rejected() -> None:
    data = corpus_bytes(EZSTART)
    with pytest.raises(ParseError) as caught:
        ezchrom_asc.parse(data[:-2], "05_25_D.asc", NO_OPTIONS)
    assert "declares 20 + 20 = 40 data points, the file has 39 rows" in caught.value.reason


@FUZZ
@given(channels=st.lists(st.lists(st.integers(-10**9, 10**9), min_size=1, max_size=60),
                         min_size=1, max_size=4),
       rate=st.sampled_from(["1.000000", "10.000000", "20.000000", "100.000000"]),
       y_mul=st.sampled_from(["1", "0.000130208", "0.001", "2.5"]),
       crlf=st.booleans())
def test_generated_exports_round_trip(channels: list[list[int]], rate: str, y_mul: str,
                                      crlf: bool) -> None:
    n = len(channels)
    tab = "\t"
    head = ["Version:\t3", f"Maxchannels:\t{n}", "Sample ID:\tS", "Method:\tM",
            f"Sampling Rate:\t{tab.join([rate] * n)}\tHz",
            f"Total Data Points:\t{tab.join(str(len(c)) for c in channels)}\tPts.",
            f"X Axis Title:\t{tab.join(['Minutes'] * n)}",
            f"Y Axis Title:\t{tab.join(['mV'] * n)}",
            f"X Axis Multiplier:\t{tab.join(['0.016667'] * n)}",
            f"Y Axis Multiplier:\t{tab.join([y_mul] * n)}"]
    end = "\r\n" if crlf else "\n"
    text = end.join(head + [str(v) for c in channels for v in c]) + end
    parsed = ezchrom_asc.parse(text.encode(), "gen.asc", NO_OPTIONS)
    assert len(parsed.signals) == n
    for signal, values in zip(parsed.signals, channels, strict=True):
        assert signal.trace is not None
        assert list(signal.trace.values) == [v * float(y_mul) for v in values]
        assert list(signal.trace.times) == [i / float(rate) * 0.016667
                                            for i in range(len(values))]


def test_worker_ingests_both_channels_and_quarantines_a_short_file(pipeline: Pipeline) -> None:
    """Before this parser the worker rejected .asc exports as an unrecognised format."""
    row = pipeline.run("2023-06-29-014.dat.asc", _real())
    assert (row.state, row.format, row.error) == ("ingested", "ezchrom-asc", None)
    injection = Injection.get(Injection.source_file == row.id)
    assert injection.sample.sample_id == "2023-06-29-Ni5silica-methanation"
    traces = list(Chromatogram.select().where(Chromatogram.injection == injection)
                  .order_by(Chromatogram.signal))
    assert [(c.signal, c.points, c.value_unit) for c in traces] == [
        ("Channel 1", 40, "pA"), ("Channel 2", 40, "25 µV")]

    short = pipeline.run("short.dat.asc", _with(_real(), b"441129\n", b""))
    assert short.state == "rejected" and short.error_line == HEADER_LINES + 79
    assert "the file has 79 rows" in (short.error or "")
    assert Injection.select().where(Injection.source_file == short.id).count() == 0
    assert Sample.select().count() == 1
