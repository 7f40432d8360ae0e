"""Property tests for the two-column trace parser.

(a) Whatever bytes arrive — random, or a generated trace with bytes flipped, cut or inserted —
the only exception that escapes ``parse`` is ParseError, and ``sniff`` stays in 0..100; (b) a
generated valid trace (with or without a header, comma, TAB or semicolon separated, decimal commas
with TAB or semicolon, any line ends and encoding) round-trips with no point lost or changed, and
so does one behind a text preamble or whitespace-separated and ending with ``EOT``.
``ACCU_FUZZ_EXAMPLES=10000`` turns the same tests into the long fuzzing run.
"""

from __future__ import annotations

import codecs

from hypothesis import given
from hypothesis import strategies as st
from support.fuzz import FUZZ, damage

from worker.parsers import trace_csv
from worker.parsers.base import ParsedFile, ParseError
from worker.parsers.options import NO_OPTIONS

NAME = "AOD9604_Std_100.dx_DAD1A.CSV"


def _only_parse_error(data: bytes, name: str = NAME) -> ParsedFile | None:
    assert 0 <= trace_csv.sniff(data, name, NO_OPTIONS) <= 100
    try:
        return trace_csv.parse(data, name, NO_OPTIONS)
    except ParseError as exc:
        assert exc.reason
        return None


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def traces(draw: st.DrawFn) -> tuple[list[float], list[float]]:
    n = draw(st.integers(1, 60))
    start = draw(st.floats(-10, 100, allow_nan=False))
    steps = draw(st.lists(st.floats(0, 1, allow_nan=False), min_size=n, max_size=n))
    times, t = [], start
    for step in steps:
        t += step
        times.append(t)
    values = draw(st.lists(finite, min_size=n, max_size=n))
    return times, values


ENCODINGS = {
    "utf-8": lambda t: t.encode("utf-8"),
    "utf-8-sig": lambda t: codecs.BOM_UTF8 + t.encode("utf-8"),
    "utf-16-le": lambda t: codecs.BOM_UTF16_LE + t.encode("utf-16-le"),
    "utf-16-be": lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"),
    "cp1252": lambda t: t.encode("cp1252"),
}
# (separator, decimal comma)
STYLES = [(",", False), ("\t", False), ("\t", True), (";", True)]


def _text(times: list[float], values: list[float], sep: str, comma: bool, header: bool,
          eol: str, final_eol: bool) -> str:
    def num(x: float) -> str:
        return repr(x).replace(".", ",") if comma else repr(x)

    lines = [f"{num(t)}{sep}{num(v)}" for t, v in zip(times, values, strict=True)]
    if header:
        lines.insert(0, f"Time [min]{sep}Signal [mAU]")
    return eol.join(lines) + (eol if final_eol else "")


@FUZZ
@given(trace=traces(), style=st.sampled_from(STYLES), header=st.booleans(),
       eol=st.sampled_from(["\n", "\r\n", "\r"]), final_eol=st.booleans(),
       encoding=st.sampled_from(sorted(ENCODINGS)))
def test_valid_traces_round_trip(trace: tuple[list[float], list[float]],
                                 style: tuple[str, bool], header: bool, eol: str,
                                 final_eol: bool, encoding: str) -> None:
    times, values = trace
    data = ENCODINGS[encoding](_text(times, values, *style, header, eol, final_eol))
    assert trace_csv.sniff(data, NAME, NO_OPTIONS) >= 50
    (signal,) = trace_csv.parse(data, NAME, NO_OPTIONS).signals
    assert signal.trace is not None
    assert list(signal.trace.times) == times
    assert list(signal.trace.values) == values
    assert signal.name == "DAD1 A"


PREAMBLES = st.lists(st.sampled_from([
    "C:\\Chem32\\1\\DATA\\RUN 1.D", "Start of data points", "Sample: Std 2", "",
    "D:\\MassHunter\\Data\\mix .D Tue Dec 17 10:13:57 2019"]), min_size=2, max_size=6)


@FUZZ
@given(trace=traces(), preamble=PREAMBLES, header=st.booleans(),
       eol=st.sampled_from(["\n", "\r\n"]), eot=st.booleans(), spaces=st.booleans())
def test_preamble_and_terminator_round_trip(trace: tuple[list[float], list[float]],
                                            preamble: list[str], header: bool, eol: str,
                                            eot: bool, spaces: bool) -> None:
    times, values = trace
    sep = "   " if spaces else ","
    text = _text(times, values, sep, False, header, eol, True)
    lines = [*preamble, "Start of data points"] + ([text] if text else [])
    data = (eol.join(lines) + ("EOT" + eol if eot else "")).encode()
    parsed = trace_csv.parse(data, "trace.csv", NO_OPTIONS)
    (signal,) = parsed.signals
    assert list(signal.trace.times) == times
    assert list(signal.trace.values) == values
    assert parsed.metadata.get("terminator") == ("EOT" if eot else None)


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_only_raise_parse_error(data: bytes) -> None:
    _only_parse_error(data)


@FUZZ
@given(trace=traces(), data=st.data())
def test_damaged_traces_only_raise_parse_error(trace: tuple[list[float], list[float]],
                                               data: st.DataObject) -> None:
    raw = _text(*trace, ",", False, data.draw(st.booleans()), "\n", True).encode()
    parsed = _only_parse_error(damage(raw, data))
    if parsed is not None:
        (signal,) = parsed.signals
        assert signal.trace is not None and len(signal.trace.times) == len(signal.trace.values)


@FUZZ
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=400))
def test_arbitrary_text_only_raises_parse_error(text: str) -> None:
    _only_parse_error(text.encode("utf-8"))


@FUZZ
@given(trace=traces(), style=st.sampled_from(STYLES), header=st.booleans(),
       eol=st.sampled_from(["\n", "\r\n", "\r"]), final_eol=st.booleans(),
       chunk=st.integers(8, 200), data=st.data())
def test_read_in_slices_as_read_whole(trace: tuple[list[float], list[float]],
                                      style: tuple[str, bool], header: bool, eol: str,
                                      final_eol: bool, chunk: int, data: st.DataObject) -> None:
    """Big traces are read a slice at a time: any slice size gives what one slice gives, the
    same points, or a refusal where one slice is refused (a damaged trace included; the first
    fault met may then be another)."""
    times, values = trace
    raw = _text(times, values, *style, header, eol, final_eol).encode("utf-8")
    if data.draw(st.booleans()):
        raw = damage(raw, data)
    original = trace_csv.CHUNK_BYTES

    def outcome() -> object:
        try:
            parsed = trace_csv.parse(raw, NAME, NO_OPTIONS)
        except ParseError as exc:
            return ("error", exc.line)
        (signal,) = parsed.signals
        assert signal.trace is not None
        return list(signal.trace.times), list(signal.trace.values), parsed.metadata

    whole = outcome()
    trace_csv.CHUNK_BYTES = chunk
    try:
        sliced = outcome()
    finally:
        trace_csv.CHUNK_BYTES = original
    if isinstance(sliced, tuple) and sliced[:1] == ("error",) and whole[:1] == ("error",):
        return  # both refused (a slice may meet a later fault of the same damage first)
    assert sliced == whole
