"""Property tests for the Agilent OpenLab CSV parser.

(a) Whatever bytes arrive — random, or a generated Report with bytes flipped, cut or inserted —
the only exception that escapes ``parse`` is ParseError, and ``sniff`` stays in 0..100; (b) a
generated valid table (either layout, comma or semicolon with decimal commas, any line ends,
UTF-8 with or without BOM, UTF-16, cp1252, quoted numbers) round-trips with no row lost or
changed. ``ACCU_FUZZ_EXAMPLES=10000`` turns the same tests into the long fuzzing run.
"""

from __future__ import annotations

import codecs
import math

from hypothesis import given
from hypothesis import strategies as st
from support.fuzz import FUZZ, damage
from support.reports import HEADER, GenPeak, report

from worker.parsers import agilent_openlab
from worker.parsers.base import ParsedFile, ParseError
from worker.parsers.options import NO_OPTIONS


def _only_parse_error(data: bytes, name: str = "fuzz_Report.csv") -> ParsedFile | None:
    assert 0 <= agilent_openlab.sniff(data, name, NO_OPTIONS) <= 100
    try:
        return agilent_openlab.parse(data, name, NO_OPTIONS)
    except ParseError as exc:
        assert exc.reason
        return None


fixed4 = st.integers(0, 10**9).map(lambda n: n / 10**4)  # printed with 4 decimals, exactly
times = st.integers(1, 60_000).map(lambda n: n / 10**3)  # minutes, 3 decimals


@st.composite
def peak_tables(draw: st.DrawFn) -> list[GenPeak]:
    n = draw(st.integers(1, 12))
    areas = draw(st.lists(fixed4, min_size=n, max_size=n).filter(lambda a: math.fsum(a) > 0))
    total = math.fsum(areas)
    rts = sorted(draw(st.lists(times, min_size=n, max_size=n)))
    return [GenPeak(height=draw(fixed4), area=a, area_pct=round(a / total * 100, 4),
                    begin=max(0.0, round(rt - 0.05, 3)), end=round(rt + 0.05, 3), rt=rt)
            for a, rt in zip(areas, rts, strict=True)]


ENCODINGS = {
    "utf-8": lambda t: t.encode("utf-8"),
    "utf-8-sig": lambda t: codecs.BOM_UTF8 + t.encode("utf-8"),
    "utf-16-le": lambda t: codecs.BOM_UTF16_LE + t.encode("utf-16-le"),
    "utf-16-be": lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"),
    "cp1252": lambda t: t.encode("cp1252"),
}


def _peakdata(peaks: list[GenPeak], eol: str) -> str:
    """The PeakData layout: the table first, then ``Key:,Value`` lines."""
    rows = [",".join(p.cells()) for p in peaks]
    total = f"{math.fsum(p.area for p in peaks):.4f}"
    return eol.join([",".join(HEADER), *rows, f"Sum,{total},,,,", "",
                     "Sample name:,P-0111_Inj_1", ""])


@FUZZ
@given(peaks=peak_tables(), layout=st.sampled_from(["report", "peakdata"]),
       european=st.booleans(), eol=st.sampled_from(["\n", "\r\n", "\r"]),
       encoding=st.sampled_from(sorted(ENCODINGS)), quote=st.booleans())
def test_valid_tables_round_trip(peaks: list[GenPeak], layout: str, european: bool, eol: str,
                                 encoding: str, quote: bool) -> None:
    if layout == "report":
        text = report(peaks, delimiter=";" if european else ",", decimal_comma=european,
                      eol=eol, quote=quote)
    else:
        text = _peakdata(peaks, eol)
    data = ENCODINGS[encoding](text)
    assert agilent_openlab.sniff(data, "x_Report.csv", NO_OPTIONS) >= 70
    parsed = agilent_openlab.parse(data, "x_Report.csv", NO_OPTIONS)
    (signal,) = parsed.signals
    got = [(p.number, p.height, p.area, p.area_pct, p.begin_min, p.end_min, p.rt_min)
           for p in signal.peaks or []]
    assert got == [(i, p.height, p.area, p.area_pct, p.begin, p.end, p.rt)
                   for i, p in enumerate(peaks, 1)]
    assert parsed.format == f"agilent-openlab-csv/{layout}"


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_only_raise_parse_error(data: bytes) -> None:
    _only_parse_error(data)


@FUZZ
@given(peaks=peak_tables(), data=st.data())
def test_damaged_reports_only_raise_parse_error(peaks: list[GenPeak], data: st.DataObject) -> None:
    parsed = _only_parse_error(damage(report(peaks).encode(), data))
    if parsed is not None:  # whatever survived is still a complete, consistent table
        (signal,) = parsed.signals
        assert signal.peaks and signal.total_area is not None


@FUZZ
@given(st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=30), max_size=8),
       st.sampled_from([",", ";"]))
def test_arbitrary_cells_in_a_table_only_raise_parse_error(cells: list[str],
                                                           delimiter: str) -> None:
    text = "\n".join([delimiter.join(HEADER), delimiter.join(cells), "Sum,1.0000,,,,", ""])
    _only_parse_error(text.encode("utf-8"))
