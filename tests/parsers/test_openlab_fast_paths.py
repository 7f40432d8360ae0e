"""The OpenLab parser's shortcuts never change a result.

``agilent_openlab`` shares one scan of the text between ``sniff`` and ``parse``, remembers the
header and metadata lines it has read, and validates a whole peak table in one call. Each file
here goes through it and through ``openlab_reference`` (the parser as it was, kept verbatim):
the same ParsedFile, or the same ParseError (reason, line, file), and the same sniff score —
on the corpus, generated tables of both layouts in every encoding, damaged reports, arbitrary
cells and arbitrary bytes.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import openlab_reference
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.corpus import CORPUS
from support.fuzz import FUZZ, damage
from support.reports import HEADER, GenPeak, report
from test_openlab_props import ENCODINGS, peak_tables
from test_sniff_fast_paths import openlab_signed

from worker.parsers import agilent_openlab
from worker.parsers.base import ParsedFile, ParseError
from worker.parsers.options import NO_OPTIONS, ParserOptions
from worker.parsers.text import decode


def _outcome(parse: object, data: bytes, name: str,
             options: ParserOptions) -> tuple[object, ...]:
    try:
        parsed: ParsedFile = parse(data, name, options)  # type: ignore[operator]
    except ParseError as exc:
        return ("error", exc.reason, exc.line, exc.filename)
    return ("parsed", parsed, parsed.model_dump(),
            [p.model_fields_set for s in parsed.signals for p in s.peaks or []])


def _reference_score(data: bytes, name: str, options: ParserOptions) -> int:
    """The reference's score, CERTAIN for a full header in a Report only OpenLab can claim
    (``test_sniff_fast_paths.openlab_signed``)."""
    score = openlab_reference.sniff(data, name, options)
    if score != 90:
        return score
    try:
        decoded, _ = decode(data[:65536], configured=options.encoding_for(name),
                            default=options.default_encoding)
    except ParseError:
        return score
    return 100 if openlab_signed(data, decoded) else score


def assert_same(data: bytes, name: str = "x_Report.csv",
                options: ParserOptions = NO_OPTIONS) -> None:
    assert agilent_openlab.sniff(data, name, options) == _reference_score(data, name, options)
    # Twice each: the second reading of the same bytes object meets what the first remembered.
    fast = [_outcome(agilent_openlab.parse, data, name, options) for _ in range(2)]
    assert fast[0] == fast[1] == _outcome(openlab_reference.parse, data, name, options)


def _corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*") if p.is_file()) if CORPUS.is_dir() else []


@pytest.mark.parametrize("path", _corpus_files(), ids=lambda p: p.name)
def test_every_corpus_file_reads_as_the_reference(path: Path) -> None:
    data = path.read_bytes()
    if len(data) > 4 * 1024 * 1024:
        pytest.skip("a big binary: nothing an OpenLab reading gets past its first bytes")
    assert_same(data, path.name)
    assert_same(bytes(bytearray(data)), path.name)


def _peakdata(peaks: list[GenPeak], eol: str, delimiter: str) -> str:
    rows = [delimiter.join(p.cells()) for p in peaks]
    total = f"{math.fsum(p.area for p in peaks):.4f}"
    return eol.join([delimiter.join(HEADER), *rows, f"Sum{delimiter}{total}", "",
                     f"Sample name:{delimiter}P-0111_Inj_1", f"Operator:{delimiter}ab", ""])


@FUZZ
@given(peaks=peak_tables(), layout=st.sampled_from(["report", "peakdata"]),
       european=st.booleans(), eol=st.sampled_from(["\n", "\r\n", "\r"]),
       encoding=st.sampled_from(sorted(ENCODINGS)), quote=st.booleans(),
       sample=st.none() | st.text(max_size=12))
def test_generated_tables_read_as_the_reference(peaks: list[GenPeak], layout: str,
                                                european: bool, eol: str, encoding: str,
                                                quote: bool, sample: str | None) -> None:
    if layout == "report":
        text = report(peaks, delimiter=";" if european else ",", decimal_comma=european,
                      eol=eol, quote=quote, sample_name=sample)
    else:
        text = _peakdata(peaks, eol, ",")
    try:
        data = ENCODINGS[encoding](text)
    except UnicodeEncodeError:
        return  # a generated sample name cp1252 cannot write
    assert_same(data)


@FUZZ
@given(peaks=peak_tables(), data=st.data())
def test_damaged_reports_read_as_the_reference(peaks: list[GenPeak], data: st.DataObject) -> None:
    assert_same(damage(report(peaks).encode(), data))


@FUZZ
@given(peaks=peak_tables(), data=st.data())
def test_damaged_peakdata_read_as_the_reference(peaks: list[GenPeak],
                                                data: st.DataObject) -> None:
    assert_same(damage(_peakdata(peaks, "\r\n", ",").encode(), data))


@FUZZ
@given(st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=30), max_size=8),
       st.sampled_from([",", ";"]), st.sampled_from(["1.0000", "0", "", "x"]))
def test_arbitrary_cells_read_as_the_reference(cells: list[str], delimiter: str,
                                               total: str) -> None:
    text = "\n".join([delimiter.join(HEADER), delimiter.join(cells),
                      f"Sum{delimiter}{total},,,,", ""])
    assert_same(text.encode("utf-8"))


@FUZZ
@given(st.lists(st.lists(st.sampled_from([
    "Height", "Area", "Area%", "RT [min]", "Name", "Type", "Width", "Retention Time", "rt",
    '"Area"', " area ", "x", "", "Sum", "Yes", "Signal A", "220.0 nm", "1.5", "-2", "1e400",
    "nan", "Sample name:", "Dilution:", "0", "Vial:", '"a,b"', '"']), max_size=8),
    min_size=1, max_size=12), st.sampled_from([",", ";"]))
def test_arbitrary_lines_of_known_cells_read_as_the_reference(lines: list[list[str]],
                                                              delimiter: str) -> None:
    assert_same(("\n".join(delimiter.join(cells) for cells in lines) + "\n").encode())


_NUMBER_CHARS = "0123456789.+-eE \t"


@FUZZ
@given(st.lists(st.lists(st.text(alphabet=_NUMBER_CHARS, max_size=8), min_size=6, max_size=6),
                min_size=1, max_size=4), st.sampled_from(["1.0000", "3", "x"]))
def test_cells_of_number_characters_read_as_the_reference(rows: list[list[str]],
                                                          total: str) -> None:
    # The characters the plain-table path lets through: the model must read each cell as
    # float (and so parse_number) does, or the table must go to the exact reader.
    text = "\n".join([",".join(HEADER), *(",".join(row) for row in rows), f"Sum,{total},,,,", ""])
    assert_same(text.encode())


@FUZZ
@given(st.lists(st.lists(st.sampled_from(["1.0", "0.25", "100", " 2 ", "", "1e1"])
                         | st.text(alphabet=_NUMBER_CHARS, max_size=6), min_size=4, max_size=8),
                min_size=1, max_size=4), st.sampled_from(["1.0", "1.25", "4"]))
def test_rows_of_any_width_read_as_the_reference(rows: list[list[str]], total: str) -> None:
    # The plain-table path checks each row's width as it splits it: a row wider or narrower
    # than the header goes to the row loop, which says what is wrong.
    text = "\n".join([",".join(HEADER), *(",".join(row) for row in rows), f"Sum,{total}", ""])
    for body in (text, "Acquisition Method:,m.amx\n" + text):
        assert_same(body.encode())


@pytest.mark.parametrize("cell", ["1.", ".5", "+.5", "-0", " 1.5", "1.5\t", "1e", "e1", ".",
                                  "+", "1e+05", "1E-5", "00012", "1.5.5", "1e400", "--1", "1 5"])
def test_edge_numbers_read_as_the_reference(cell: str) -> None:
    for row in ([cell, "1", "100", "1", "2", "1.5"], ["1", cell, "100", "1", "2", "1.5"]):
        text = "\n".join([",".join(HEADER), ",".join(row), "Sum,1.0000,,,,", ""])
        assert_same(text.encode())


@pytest.mark.parametrize("cell", ["1e", "7.5"])
def test_two_columns_of_one_field_read_as_the_reference(cell: str) -> None:
    # RT twice: the exact reader checks both cells, the later one wins.
    text = f"Height,Area,RT,RT [min]\n1,2,{cell},1.5\nSum,2.0000,,\n"
    assert_same(text.encode())


@pytest.mark.parametrize("european", [False, True])
def test_a_file_too_big_to_remember_reads_as_the_reference(european: bool) -> None:
    # Over 64 Ki characters: nothing of it is remembered, its candidates are found per reading.
    peaks = [GenPeak(height=1.0, area=2.5, area_pct=50.0, begin=1.0, end=1.1, rt=1.05),
             GenPeak(height=2.0, area=2.5, area_pct=50.0, begin=2.0, end=2.1, rt=2.05)]
    text = report(peaks, delimiter=";" if european else ",", decimal_comma=european)
    filler = "".join(f"Part {n} ratio:,{n}\n" for n in range(5000))
    data = (filler + text).encode()
    assert len(data) > 65536
    assert_same(data)
    assert_same(data + b"Area,RT,Height\n")  # a second header after the table


@pytest.mark.parametrize("tail", [
    "", "Height,Area,RT [min]\n", "Area;RT;Height\n1;2;3\nSum;2,0\n", "x\n",
    "Height,Area,Area%,Peak Begin Time,Peak End Time,RT [min]\n0.5,1.0,100.0,1.0,1.1,1.05\n",
    "Height,Area,Area%,Peak Begin Time,Peak End Time,RT [min]\n0.5,1.0,100.0,1.0,1.1,1.05\n"
    "Sum,1.0000,,,,\n\nArea,RT,Height\n",
    "Height,Area,Area%,Peak Begin Time,Peak End Time,RT [min]\n0.5,1.0,100.0,1.0,1.1,1.05\n"
    "Sum,1.0000,,,,\n\nRetention;Area;Height;x\n",
    "Height,Area,Area%,Peak Begin Time,Peak End Time,RT [min]\n0.5,1.0,100.0,1.0,1.1,1.05\n"
    "Sum,1.0000,,,,\n\nSample name:,P-1,Acquisition Method:,other.amx\nDilution:,0\n"])
def test_files_sharing_a_remembered_preamble_read_as_the_reference(tail: str) -> None:
    # A sequence's reports share their preamble, which the scan remembers: what follows it is
    # read afresh in each file (a second header, a semicolon header, a file cut at the header,
    # metadata after the table).
    full = report([GenPeak(height=1.0, area=2.5, area_pct=100.0, begin=1.0, end=1.1,
                           rt=1.05)], method="shared preamble method.amx")
    preamble = full[:full.index("Height,Area")]
    assert_same(full.encode())
    assert_same(bytes(bytearray(full.encode())))
    assert_same((preamble + tail).encode())
    assert_same((preamble + tail).replace("\n", "\r\n").encode())
    assert_same((preamble[:-1] + tail).encode())  # the preamble's last line ends otherwise



@FUZZ
@given(line=st.integers(0, 40), before=st.sampled_from(["", "Injection ", "Inform", "x,"]),
       after=st.sampled_from(["", ",Yes", "\n"]), cut=st.integers(0, 12),
       eol=st.sampled_from(["\n", "\r\n"]), encoding=st.sampled_from(sorted(ENCODINGS)))
def test_information_anywhere_in_a_sequence_scores_as_the_reference(
        line: int, before: str, after: str, cut: int, eol: str, encoding: str) -> None:
    # Only a Report without Chromeleon's "… Information:" is CERTAIN; where the scan
    # remembers the sequence's preamble, its answer for those lines is remembered too, and
    # the lines after it are looked through in each file.
    full = report([GenPeak(height=1.0, area=2.5, area_pct=100.0, begin=1.0, end=1.1,
                           rt=1.05)], method="information method.amx", eol=eol)
    lines = full.split(eol)
    mark = before + "Information:"[:len("Information:") - cut] + after
    lines.insert(min(line, len(lines)), mark)
    try:
        plain, marked = ENCODINGS[encoding](full), ENCODINGS[encoding](eol.join(lines))
    except UnicodeEncodeError:
        return
    for data in (plain, marked, bytes(bytearray(plain)), bytes(bytearray(marked))):
        assert agilent_openlab.sniff(data, "x_Report.csv", NO_OPTIONS) == _reference_score(
            data, "x_Report.csv", NO_OPTIONS)



def test_files_of_many_sequences_interleaved_read_as_the_reference() -> None:
    # More preambles than are remembered, in runs and interleaved: the last one a file started
    # with is tried first, and may have been forgotten by the others since; one preamble also
    # begins another.
    methods = [f"sequence {n} method.amx" for n in range(agilent_openlab._PREFIXES + 4)]
    files = {m: report([GenPeak(height=1.0, area=2.5, area_pct=100.0, begin=1.0, end=1.1,
                                rt=1.05)], method=m) for m in methods}
    longer = files[methods[0]].replace("Path:", "Operator:,ab\nPath:", 1)
    order = [0, 0, 1, 1, 0, *range(2, len(methods)), 0, 1, 5, 5, len(methods) - 1, 0]
    for n in order:
        assert_same(files[methods[n]].encode())
        assert_same(longer.encode())
        assert_same(bytes(bytearray(files[methods[n]].encode())))


_ROW = "0.5,1.0,100.0,1.0,1.1,1.05"


@pytest.mark.parametrize("rows", [
    [_ROW], [_ROW, _ROW], [], [",,,,,", _ROW], [_ROW, " \t, ,,,,"], [_ROW, ""], ["", _ROW],
    [_ROW, "  "], [_ROW + ",", _ROW], [_ROW, "0.5,1.0"], ['"0.5",1.0,100.0,1.0,1.1,1.05'],
    [_ROW, "Sum,2.0000,,,,", _ROW], [_ROW, " Sum,1.0000"], [_ROW, "sum,1.0000"],
    ["0.5;1.0;100.0;1.0;1.1;1.05"], ["0,5,1,0"], [_ROW, "1e400,1.0,100.0,1.0,1.1,1.05"],
    [_ROW, "µ,1.0,100.0,1.0,1.1,1.05"], [_ROW, "x"], [_ROW] * 4])
@pytest.mark.parametrize("total", ["Sum,1.0000,,,,", "Sum,2.0000,,,,", "Sum;1,0000", "Sum,x"])
def test_rows_read_in_one_block_read_as_the_reference(rows: list[str], total: str) -> None:
    # The rows up to the first Sum row are taken in one block when all are plain numbers; any
    # other row (blank, quoted, a first cell reading sum …) sends them to the row loop.
    body = "\n".join(["Height,Area,Area%,Peak Begin Time,Peak End Time,RT [min]", *rows,
                      total, ""])
    for text in (body, "Acquisition Method:,m.amx\nPath:,p\n" + body, body[:-1]):
        assert_same(text.encode())
        assert_same(text.replace("\n", "\r\n").encode())
        assert_same(text.encode(), options=ParserOptions(max_peaks_per_table=2))


@pytest.mark.parametrize("meta", ["Dilution:,0\n", "Dilution:,2\n", 'Vial:,"a\n',
                                  "Injection Volume:,5 µL\n", "",
                                  # over the csv module's field limit: an unreadable line
                                  'Note:,"' + "x" * 140_000 + '"\n'])
@pytest.mark.parametrize("total", ["1.0000", "9.0000", "x"])
@pytest.mark.parametrize("area", ["1.0", "-1.0", "1e400"])
def test_a_file_validated_in_one_call_fails_as_the_reference(meta: str, total: str,
                                                             area: str) -> None:
    # A plain table with Area% is validated with the file in one call: a bad peak, a bad
    # metadata value, an unreadable metadata line and a wrong Sum must still be reported as
    # the reading in steps reports them, in its order.
    table = (f"Height,Area,Area%,Peak Begin Time,Peak End Time,RT [min]\n"
             f"0.5,{area},100.0,1.0,1.1,1.05\nSum,{total},,,,\n")
    assert_same((f"Acquisition Method:,m.amx\n{meta}" + table + "\n").encode())
    assert_same((table + "\n" + meta.replace("\n", "") + "\n").encode())


@given(st.from_regex(r'"?[0-9 .eE+-]{0,30}"?(,[0-9x"]*)?', fullmatch=True),
       st.sampled_from(["", "\n", "\n\n", "\nSample name:,s\n"]))
def test_any_sum_row_after_plain_rows_reads_as_the_reference(total: str, after: str) -> None:
    # A plain table with its Sum row is read in the fewest steps only when its total is
    # plainly a finite number: a total of 400 digits (inf), quoted, blank or with an exponent
    # goes to the row loop, and either way the file reads as the reference reads it.
    table = ("Height,Area,Area%,Peak Begin Time,Peak End Time,RT [min]\n"
             f"0.5,1.0,100.0,1.0,1.1,1.05\nSum,{total}" + after)
    assert_same(("Acquisition Method:,m.amx\n" + table).encode())
    assert_same(table.encode())


@FUZZ
@given(rows=st.integers(1, 4), decimals=st.integers(0, 6), point=st.booleans(),
       off=st.sampled_from([0.0, 0.4, 0.5, 0.6, 1.0, 2.4, 2.6, 3.1]))
def test_a_sum_near_its_tolerance_reads_as_the_reference(rows: int, decimals: int, point: bool,
                                                         off: float) -> None:
    # The plain-table path counts the total's decimals without the regex; the tolerance they
    # give must accept and refuse the same totals (a total ending in its point included).
    printed = f"{rows + off * 10 ** -decimals:.{decimals}f}" + ("." if point and not decimals
                                                                else "")
    row = "0.5,1.0,100.0,1.0,1.1,1.05"
    text = "\n".join(["Acquisition Method:,m.amx", ",".join(HEADER), *[row] * rows,
                      f"Sum,{printed},,,,", ""])
    assert_same(text.encode())


def test_a_total_too_long_to_be_finite_reads_as_the_reference() -> None:
    table = ("Height,Area,Area%,Peak Begin Time,Peak End Time,RT [min]\n"
             f"0.5,1.0,100.0,1.0,1.1,1.05\nSum,{'9' * 400}.0,,,,\n\n")
    assert_same(("Acquisition Method:,m.amx\n" + table).encode())


def test_only_s_lower_cases_to_s() -> None:
    # The row loop looks for the Sum row only in a first cell holding an S.
    assert [c for c in map(chr, range(sys.maxunicode + 1))
            if "s" in c.lower() and c not in "sS"] == []


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_read_as_the_reference(data: bytes) -> None:
    assert_same(data)


def test_a_limit_on_peaks_rejects_as_the_reference() -> None:
    peaks = [GenPeak(height=1.0, area=1.0, area_pct=20.0, begin=1.0, end=1.1, rt=1.05)] * 5
    data = report(peaks).encode()
    assert_same(data, options=ParserOptions(max_peaks_per_table=3))
    assert_same(data, options=ParserOptions(max_peaks_per_table=5))
