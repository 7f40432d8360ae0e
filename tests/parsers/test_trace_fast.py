"""The trace parser's fast reader against the exact, line-by-line one.

Traces are read a slice at a time by a bulk reader (one ``translate`` for the shape, the cells
read as one JSON array, or by ``float`` over the split cells when JSON spells a number
otherwise) that hands a slice to the exact reader whenever it cannot vouch for it. So
(a) on any slice the fast reader gives the exact reader's values bit for bit or nothing, never
accepts what the exact reader refuses, and does read a plain slice; (b) a whole parse gives the
same points, or the same ParseError (line and reason), as one with the exact reader only, on
generated traces with bad cells, blank lines, mixed line ends, TAB/semicolon and decimal commas.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from contextlib import AbstractContextManager
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.fuzz import FUZZ

from worker.parsers import trace_csv
from worker.parsers.base import ParseError
from worker.parsers.options import NO_OPTIONS
from worker.parsers.text import lines_of

NAME = "RUN_Std.dx_DAD1A.CSV"
# (delimiter, decimal comma): the combinations the parser reads.
STYLES = [(",", False), ("\t", False), (";", False), ("\t", True), (";", True)]

# Printed with 15 digits, the largest doubles round up past the largest: kept below them
# (cells that overflow are among the odd ones).
finite = st.floats(-1e307, 1e307)


def _plain(x: float, style: str) -> str:
    """A number as exports print it: shortest repr, 15 digits, fixed, or with an exponent."""
    return {"repr": repr(x), "g15": f"{x:.15g}", "fixed": f"{x:.6f}", "exp": f"{x:.10E}",
            "int": str(int(x))}[style]


PLAIN_STYLES = st.sampled_from(["repr", "g15", "fixed", "exp", "int"])
EOLS = ["\n", "\r\n", "\r"]
# Cells that float() or the exact reader read differently, or refuse: each must be decided by
# the exact reader.
ODD_CELLS = st.sampled_from([
    "", " ", "x", "nan", "inf", "-inf", "1e999", "-1e400", "1_0", "--1", "+-1", "1e", "e5", ".",
    "1.", ".5", "+3", "-0", "-0.0", "00.5", " 1.5", "1.5 ", '"1.5"', "1,5", "1.5.5", "1e5.0",
    "1,", "0x10", "١", "1\x0c", "9" * 400, "1" * 30 + "e300", "1.5;2", "1.5\t2", "1,5,5",
    # Numbers JSON reads as integers, or refuses though float() reads them.
    "0", "-0", "7", "007", "-.5", "+.5", "1.e5", "-0e0", "1E5", "1e-400", "9007199254740993",
    "1" * 25, "2.4703282292062328e-324", "[1]", "true", "null", "NaN", "Infinity",
])


@st.composite
def slices(draw: st.DrawFn, odd: bool) -> tuple[bytes, str, bool]:
    """Rows of a trace slice (bytes), its delimiter and whether it has decimal commas; ``odd``
    makes one to three faults or oddities among plain rows (a bad or unusual cell, a row of
    other than two cells, a trailing delimiter, a blank line, another line end), so that each
    is met alone as well as with others."""
    sep, comma = draw(st.sampled_from(STYLES))
    eol = draw(st.sampled_from(EOLS))
    count = draw(st.integers(1, 30))

    def plain() -> str:
        cell = _plain(draw(finite), draw(PLAIN_STYLES))
        return cell.replace(".", ",") if comma else cell

    rows = [[plain(), plain()] for _ in range(count)]
    ends = [eol] * count
    for _ in range(draw(st.integers(1, 3)) if odd else 0):
        i = draw(st.integers(0, count - 1))
        fault = draw(st.sampled_from(["cell", "cell", "cell", "width", "delimiter", "eol"]))
        if fault == "cell":
            column = draw(st.integers(0, len(rows[i])))
            rows[i][column:column + 1] = [draw(ODD_CELLS)]
        elif fault == "width":
            rows[i] = draw(st.sampled_from([[], rows[i][:1], [*rows[i], plain()]]))
        elif fault == "delimiter":
            rows[i] = [*rows[i], ""]
        else:
            ends[i] = draw(st.sampled_from(EOLS))
    raw = "".join(sep.join(row) + end for row, end in zip(rows, ends, strict=True))
    if draw(st.booleans()):
        raw = raw.rstrip("\r\n")
    return raw.encode("utf-8"), sep, comma


def _bits(columns: tuple[Sequence[float], Sequence[float]]) -> list[bytes]:
    """Each column's doubles, bit for bit (-0.0 told from 0.0)."""
    return [array("d", column).tobytes() for column in columns]


def _exact(raw: bytes, sep: str, comma: bool) -> tuple[array, array] | ParseError:
    try:
        return trace_csv._columns(lines_of(raw.decode("utf-8")), sep, comma, NAME, 1)
    except ParseError as exc:
        return exc


@FUZZ
@given(case=st.booleans().flatmap(slices))
def test_fast_reader_gives_the_exact_values_or_nothing(case: tuple[bytes, str, bool]) -> None:
    raw, sep, comma = case
    exact = _exact(raw, sep, comma)
    fast = trace_csv.fast_columns(raw, sep, comma)
    if fast is None:
        return
    assert not isinstance(exact, ParseError), f"fast reader accepted what {exact} refuses"
    assert _bits(fast) == _bits(exact)


@FUZZ
@given(case=slices(odd=False))
def test_fast_reader_reads_plain_slices(case: tuple[bytes, str, bool]) -> None:
    """Rows of two numbers as exports print them are read by the bulk reader itself."""
    raw, sep, comma = case
    fast = trace_csv.fast_columns(raw, sep, comma)
    exact = _exact(raw, sep, comma)
    assert fast is not None and not isinstance(exact, ParseError)
    assert _bits(fast) == _bits(exact)


def _by_line_end(raw: bytes, sep: str, comma: bool) -> tuple[int | None, object]:
    """A slice read as the parse reads it once the counting pass has checked its shape with
    the line end its rows use: (its rows, its columns), None for either not vouched for."""
    newline = b"\n" if b"\n" in raw else b"\r"
    eol = (b"\r\n" if b"\r" in raw else b"\n") if newline == b"\n" else b"\r"
    rows = trace_csv._shaped_rows(raw, sep.encode(), eol, comma)
    return rows, None if rows is None else trace_csv._numbers(raw, sep.encode(), eol, comma)


@FUZZ
@given(case=st.booleans().flatmap(slices))
def test_a_slice_checked_by_its_line_end_gives_the_exact_rows_or_nothing(
        case: tuple[bytes, str, bool]) -> None:
    raw, sep, comma = case
    rows, fast = _by_line_end(raw, sep, comma)
    if fast is None:
        return
    exact = _exact(raw, sep, comma)
    assert not isinstance(exact, ParseError), f"fast reader accepted what {exact} refuses"
    assert rows == len(exact[0])
    assert _bits(fast) == _bits(exact)


@FUZZ
@given(case=slices(odd=False))
def test_a_plain_slice_is_checked_by_its_line_end(case: tuple[bytes, str, bool]) -> None:
    """CR LF, LF or CR throughout: read without first making every line end an LF."""
    raw, sep, comma = case
    rows, fast = _by_line_end(raw, sep, comma)
    exact = _exact(raw, sep, comma)
    assert fast is not None and not isinstance(exact, ParseError)
    assert rows == len(exact[0]) and _bits(fast) == _bits(exact)


@pytest.mark.parametrize(("raw", "sep", "comma"), [
    (b"0,1\n0.1,-0.0\n", ",", False),
    (b"0\t1,5\r\n0,1\t2\r\n", "\t", True),
    (b"0;1e-3\r0.5;2E+2", ";", False),
    (b"0,1.7e308\n1,1.7e308\n", ",", False),  # the values' sum overflows, none of them
])
def test_fast_reader_reads_zeros_line_ends_and_huge_values(raw: bytes, sep: str,
                                                          comma: bool) -> None:
    fast = trace_csv.fast_columns(raw, sep, comma)
    assert fast is not None
    exact = _exact(raw, sep, comma)
    assert not isinstance(exact, ParseError) and _bits(fast) == _bits(exact)


@pytest.mark.parametrize(("raw", "sep", "comma", "times", "values"), [
    # Integers in JSON: read by float() too, so a negative zero keeps its sign.
    (b"-0,-0\n0,7\n", ",", False, [-0.0, 0.0], [-0.0, 7.0]),
    (b"9007199254740993,1\n", ",", False, [9007199254740992.0], [1.0]),
    # Spelled otherwise than JSON spells numbers: float() over the split cells reads them.
    (b"+1,1.\n.5,007\n", ",", False, [1.0, 0.5], [1.0, 7.0]),
    (b"-,5;1,\n1,e5;,5\n", ";", True, [-0.5, 1e5], [1.0, 0.5]),
])
def test_fast_reader_reads_what_float_reads(raw: bytes, sep: str, comma: bool,
                                            times: list[float], values: list[float]) -> None:
    fast = trace_csv.fast_columns(raw, sep, comma)
    assert fast is not None
    assert _bits(fast) == _bits((times, values))


def test_exports_are_read_without_a_float_call_per_split_cell() -> None:
    """Cells as exports print them are read as one JSON array; the split cells are the
    fallback (its float() made to fail here, to show it is not the one reading)."""
    raw = "".join(f"{i / 1200!r},{(i % 97) / 7 - 0.2!r}\r\n" for i in range(1, 500)).encode()
    exact = _exact(raw, ",", False)
    with mock.patch.object(trace_csv, "float", side_effect=AssertionError, create=True):
        fast = trace_csv.fast_columns(raw, ",", False)
        with pytest.raises(AssertionError):
            trace_csv.fast_columns(b"+1,2\n", ",", False)
    assert fast is not None and not isinstance(exact, ParseError)
    assert _bits(fast) == _bits(exact)


def _exact_reader_only() -> AbstractContextManager[object]:
    """Every slice read by the exact reader, as for a code page the bulk reader cannot read."""
    return mock.patch.object(trace_csv, "_ascii_transparent", lambda _: False)


def _outcome(raw: bytes, chunk: int) -> object:
    original = trace_csv.CHUNK_BYTES
    trace_csv.CHUNK_BYTES = chunk
    try:
        parsed = trace_csv.parse(raw, NAME, NO_OPTIONS)
    except ParseError as exc:
        return ("error", exc.line, exc.reason)
    finally:
        trace_csv.CHUNK_BYTES = original
    (signal,) = parsed.signals
    assert signal.trace is not None
    return signal.trace.times.tobytes(), signal.trace.values.tobytes(), parsed.metadata


@FUZZ
@given(case=st.booleans().flatmap(slices), header=st.booleans(),
       chunk=st.sampled_from([16, 64, 256, trace_csv.CHUNK_BYTES]))
def test_parse_as_with_the_exact_reader_alone(case: tuple[bytes, str, bool], header: bool,
                                              chunk: int) -> None:
    """Same points, or the same refusal (line and reason), whichever slice is read fast."""
    raw, sep, _ = case
    if header:
        raw = f"Time [min]{sep}Signal [mAU]\n".encode() + raw
    fast = _outcome(raw, chunk)
    with _exact_reader_only():
        exact = _outcome(raw, chunk)
    assert fast == exact


def test_a_bad_row_after_fast_slices_keeps_its_line_number() -> None:
    rows = [f"{i / 100!r},{i % 7 - 3.5!r}\n" for i in range(2000)]
    rows[1500] = "15.0,1.2.3\n"
    line, reason = _outcome("".join(rows).encode(), 4096)[1:]
    assert line == 1501 and "not a number" in reason


@pytest.mark.parametrize(("codec", "bulk"), [
    ("utf-8", True), ("cp1252", True), ("shift_jis", True),
    ("utf-16-le", False), ("utf-32", False), ("cp500", False), ("utf-7", False),
])
def test_bulk_reading_only_where_bytes_read_as_ascii(codec: str, bulk: bool) -> None:
    """The bulk reader looks at bytes: a code page set in the settings that writes digits or
    line ends otherwise (UTF-16, EBCDIC, UTF-7's '+') leaves every slice to the exact reader."""
    assert trace_csv._ascii_transparent(codec) is bulk


@pytest.mark.parametrize("chunk", [4096, trace_csv.CHUNK_BYTES])
def test_rows_ending_otherwise_than_counted_are_all_read(chunk: int) -> None:
    """The arrays are sized by counting the line end the head uses; rows ending in another
    (lone CRs after LFs) are read all the same, as the exact reader reads them."""
    rows = [f"{i / 10!r},{i % 7 - 0.5!r}" for i in range(20_000)]
    raw = ("\n".join(rows[:10]) + "\n" + "\r".join(rows[10:]) + "\r").encode()
    fast = _outcome(raw, chunk)
    with _exact_reader_only():
        assert fast == _outcome(raw, chunk)
    assert not isinstance(fast[0], str) and len(fast[0]) == 20_000 * 8


@pytest.mark.parametrize("raw", [
    b"0.0,0.0\n0.0,0.0\n0.0",  # a last line of one cell, without its line end
    b"0.0,0.0\r\n0.0,0.0\r\n0.0",
    b"1,2\n\n3,4\n",  # a blank line
])
def test_slices_not_two_cells_a_line_are_left_to_the_exact_reader(raw: bytes) -> None:
    assert isinstance(_exact(raw, ",", False), ParseError)
    assert trace_csv.fast_columns(raw, ",", False) is None
    assert _by_line_end(raw, ",", False) == (None, None)
