"""The sniffers' shortcuts never change a score.

Each ``sniff`` avoids decoding and scanning whole files where it can: byte-level pre-checks (a
landmark absent from the bytes, a first byte that rules the format out) and cheaper splits.
Here every sniffer is compared with the full reading it replaced — decode, split, test every line,
kept below as the reference — on generated text in every encoding the decoder knows, damaged
real files and arbitrary bytes, with and without a configured code page; and each shared helper
with its plain definition.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from support.corpus import corpus_dir
from support.fuzz import FUZZ, damage

from worker.parsers import (
    agilent_openlab,
    binary,
    chemstation_common,
    chemstation_csv,
    chemstation_txt,
    chemstation_xml,
    chromeleon,
    empower,
    ezchrom_asc,
    shimadzu,
    text,
    trace_csv,
)
from worker.parsers.base import ParseError
from worker.parsers.options import ParserOptions

# --- The full readings the sniffers used to do ------------------------------------------------


def _lines(decoded: str) -> list[str]:
    lines = re.split(r"\r\n|\r|\n", decoded)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _checked_lines(data: bytes, filename: str, options: ParserOptions) -> list[str] | None:
    """``decode_lines`` as it was: None where it raised."""
    try:
        decoded, _ = text.decode(data, filename, configured=options.encoding_for(filename))
    except ParseError:
        return None
    lines = _lines(decoded)
    return None if any(chemstation_common._CONTROL.search(line) for line in lines) else lines


def _norm(cell: str) -> str:
    return re.sub(r"\s+", " ", cell.strip().strip('"').strip()).lower()


def _openlab_header(line: str, delimiter: str) -> list[str | None] | None:
    low = line.lower()
    if not ("area" in low or "rt" in low or "retention" in low):
        return None
    try:
        cells = agilent_openlab._split(line, delimiter)
    except ParseError:
        return None
    fields = [agilent_openlab.COLUMNS.get(_norm(c)) for c in cells]
    known = [f for f in fields if f]
    if len(known) < 3 or not any(req in fields for req in agilent_openlab.REQUIRED):
        return None
    return fields


def openlab_reference(data: bytes, filename: str, options: ParserOptions) -> int:
    try:
        decoded, _ = text.decode(data[:65536], configured=options.encoding_for(filename))
    except ParseError:
        return 0
    lines = _lines(decoded)[:400]
    delimiter = ";" if any(_openlab_header(line, ";") for line in lines) else ","
    for line in lines:
        fields = _openlab_header(line, delimiter)
        if fields is not None and agilent_openlab._missing(fields):
            return 55
        if fields is not None and "area_pct" in fields and "height" in fields:
            return 100 if openlab_signed(data, decoded) else 90
        if fields is not None:
            return 70
    return 0


def openlab_signed(data: bytes, decoded: str) -> bool:
    """A full header in a file that starts as a Report and holds no ``Information:`` (the
    landmark of Chromeleon, sniffed after it), not UTF-16: CERTAIN (``test_detect`` shows
    detection names the parser it named when this was 90)."""
    return (decoded.startswith("Acquisition Method:") and b"Information:" not in data
            and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)))


def chemstation_csv_reference(data: bytes, filename: str, options: ParserOptions) -> int:
    module = chemstation_csv
    lines = _checked_lines(data, filename, options)
    if lines is None:
        return 0
    try:
        rows = (module._fields(line, i, filename) for i, line in enumerate(lines, 1) if line)
        first = next(rows, None)
        if first is None:
            return 0
        base = module._base_name(filename)
        hinted = 10 if base.lower() == module._HEADER_NAME or module._PEAK_FILE.fullmatch(
            base) else 0
        if first[0] == "Sample Name":
            return min(90 + hinted, 100) if any(row[0] == "Number of Columns"
                                                for row in rows) else 0
        if module._standard_shape(first) and all(module._standard_shape(row) for row in rows):
            return 75 + hinted
    except ParseError:
        return 0
    return 0


def chemstation_txt_reference(data: bytes, filename: str, options: ParserOptions) -> int:
    module = chemstation_txt
    lines = _checked_lines(data, filename, options)
    if lines is None:
        return 0
    score = 0
    if lines and lines[0].startswith("Data File "):
        score += 25
    if any(module._SIGNAL.fullmatch(line) for line in lines):
        score += 20
    if any(module._TABLE_RULE.fullmatch(line) for line in lines):
        score += 20
    if any(line.startswith(("Acq. Operator", "Injection Date")) for line in lines):
        score += 10
    if any(line.strip() == "Area Percent Report" for line in lines):
        score += 20
    if score < 50:
        return 0  # not claimed either way: scored 0 since the sniffer lets such files go early
    if filename.lower().endswith("report.txt"):
        score += 5
    return min(score, 100)


def chromeleon_reference(data: bytes, filename: str, options: ParserOptions) -> int:
    head = data[:65536]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        decoded = head.decode("utf-16", errors="ignore")
    else:
        decoded = head.decode("latin-1")
    lines = {line.strip() for line in decoded.splitlines()}
    if (any(block in lines for block in chromeleon._INFO_BLOCKS)
            and any(marker in lines for marker in chromeleon._DATA_MARKERS)):
        return 95
    if "Raw Data Header Information:" in lines or "Chromatogram Data Information:" in lines:
        return 70
    return 0


def empower_reference(data: bytes, filename: str, options: ParserOptions) -> int:
    rows = data[:65536].decode("latin-1").splitlines()
    if len(rows) < 2:
        return 0
    if empower._key_value_header(rows):
        return 95
    names, names_quoted = empower._fields(rows[0])
    values, values_quoted = empower._fields(rows[1])
    known = len(empower.KNOWN_FIELDS.intersection(names))
    if names_quoted and known >= 1:
        return 95 if values_quoted and len(values) == len(names) else 60
    if known >= 2 and len(values) == len(names):
        return 60
    return 0


def shimadzu_reference(data: bytes, filename: str, options: ParserOptions) -> int:
    head = data[:65536]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        decoded = head.decode("utf-16", errors="ignore").replace("\r", "\n")
    else:
        decoded = head.decode("latin-1").replace("\r", "\n")
    lines = [line.strip() for line in decoded.splitlines() if line.strip()]
    if not lines:
        return 0
    titles = [line[1:-1] for line in lines if line.startswith("[") and line.endswith("]")]
    known = [t for t in titles if t in ("Sample Information", "Original Files", "Configuration")
             or shimadzu._PEAK_TABLE.match(t) or shimadzu._CHROMATOGRAM.match(t)
             or shimadzu._STATUS.match(t)]
    if lines[0] == "[Header]" and known and any(
            line.startswith(("Application Name\t", "Application Name,")) for line in lines):
        return 95
    if lines[0] == "[Header]" and known:
        return 75
    if lines[0].startswith("[") and len(known) >= 2:
        return 60
    return 0


def trace_reference(data: bytes, filename: str, options: ParserOptions) -> int:
    try:
        decoded, _ = text.decode(data[:8192] if len(data) > 8192 else data,
                                 configured=options.encoding_for(filename))
    except ParseError:
        return 0
    lines = [ln for ln in _lines(decoded)[:21] if ln.strip()]
    if len(data) > 8192:
        lines = lines[:-1]
    if lines and lines[-1].strip() == "EOT":
        lines = lines[:-1]
    pair = trace_csv._NUMERIC_PAIR
    rows = [i for i, ln in enumerate(lines) if pair.match(ln)]
    if not rows or rows != list(range(rows[0], len(lines))):
        return 0
    if any(trace_csv._LOOKS_NUMERIC.match(ln) for ln in lines[:rows[0]]):
        return 0
    if rows[0] > 1:
        return 50
    return 80 if trace_csv._SIGNAL_IN_NAME.search(filename) else 60


def ezchrom_reference(data: bytes, filename: str, options: ParserOptions) -> int:
    try:
        decoded, _ = text.decode(data[:4096], configured=options.encoding_for(filename))
    except ParseError:
        return 0
    lines = _lines(decoded)
    if len(lines) < 2 or not lines[0].startswith("Version:") or \
            not lines[1].startswith("Maxchannels:"):
        return 0
    keys = {line.split(":", 1)[0] for line in lines[:20]}
    return 100 if {"Total Data Points", "X Axis Multiplier", "Y Axis Multiplier"} <= keys else 60


Sniffer = Callable[[bytes, str, ParserOptions], int]
REFERENCES: dict[str, tuple[Sniffer, Sniffer]] = {
    "agilent-openlab-csv": (agilent_openlab.sniff, openlab_reference),
    "agilent-chemstation-csv": (chemstation_csv.sniff, chemstation_csv_reference),
    "agilent-chemstation-txt": (chemstation_txt.sniff, chemstation_txt_reference),
    "chromeleon": (chromeleon.sniff, chromeleon_reference),
    "empower": (empower.sniff, empower_reference),
    "shimadzu": (shimadzu.sniff, shimadzu_reference),
    "trace-csv": (trace_csv.sniff, trace_reference),
    "ezchrom-asc": (ezchrom_asc.sniff, ezchrom_reference),
}


def assert_same_scores(data: bytes, filename: str, configured: str | None = None) -> None:
    options = ParserOptions(encodings=(("*", configured),) if configured else ())
    for name, (sniff, reference) in REFERENCES.items():
        assert sniff(data, filename, options) == reference(data, filename, options), name


# --- Generated input --------------------------------------------------------------------------

# Pieces of every format's landmarks, the line ends and blanks str.splitlines and split_lines
# disagree on, characters that lower-case oddly (İ, Kelvin sign) and the bytes that steer the
# decoder (C1 controls, cp1252 signs it refuses, µ which it does not).
_PIECES = [
    "\n", "\r\n", "\r", "\n\r", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\xa0", " ", "\t", ",",
    ";", '"', "\x00", "\x07", "\x7f", "\ufeff", "µ", "°", "¤", "ƒ", "İ", "\u212a", "\x93", "1",
    "2.5", "-0.21", "1e3", "BB", "Data File ", "Signal 1:", "Signal A", "Signal 12: DAD1 A,",
    "-----|-----|", "-|-", "Acq. Operator", "Injection Date", "Area Percent Report",
    "Sample Name", '"Sample Name",x,', "Number of Columns", "Height", "Area", "Area%", "RT [min]",
    "RT", "Retention Time", "AREA", "Rt", "Peak Begin Time", "Sum", "[Header]",
    "[Peak Table(Detector A)]", "[LC Chromatogram(Detector A-Ch1)]", "[Sample Information]",
    "Application Name", "Information:", "Sample Information:", "Raw Data:",
    "Raw Data Header Information:", "Chromatogram Data:", '"SampleName"', '"Channel"',
    "SampleName", "Channel", "Vial", "Version:", "Maxchannels:", "Total Data Points:",
]
_ENCODINGS = ["utf-8", "utf-8-bom", "utf-16-le-bom", "utf-16-be-bom", "cp1252", "latin-1"]


def _encode(chars: str, encoding: str) -> bytes:
    if encoding.endswith("-bom"):
        codec = encoding[:-4]
        bom = {"utf-8": codecs.BOM_UTF8, "utf-16-le": codecs.BOM_UTF16_LE,
               "utf-16-be": codecs.BOM_UTF16_BE}[codec]
        return bom + chars.encode(codec, errors="surrogatepass")
    return chars.encode(encoding, errors="replace")


texts = st.lists(st.sampled_from(_PIECES) | st.text(max_size=4), max_size=40).map("".join)
names = st.sampled_from(["x.csv", "Report.TXT", "REPORT01.CSV", "Report00.CSV",
                         "a.dx_DAD1A.CSV", "run.arw", "p_PeakData.csv"])
configured = st.sampled_from([None, "utf-8", "cp1250", "latin-1", "shift_jis", "cp037"])


@FUZZ
@given(chars=texts, encoding=st.sampled_from(_ENCODINGS), filename=names, code_page=configured,
       cut=st.integers(0, 8))
@example(chars="\ufeffData File x\n", encoding="utf-8-bom", filename="Report.TXT",
         code_page=None, cut=0)
@example(chars="Sample Name,a\nNumber of Columns,7\n", encoding="utf-16-le-bom",
         filename="Report00.CSV", code_page=None, cut=0)
@example(chars="[Header]\x85Application Name,x\n[Sample Information]\n", encoding="latin-1",
         filename="x.txt", code_page=None, cut=0)
@example(chars='"Sample Name",x,y\r\n"Number of Columns",7,\r\n', encoding="utf-8",
         filename="Report00.CSV", code_page=None, cut=0)
@example(chars='"1",2.5,"BB",0.1,3,4,50\n', encoding="utf-8", filename="REPORT01.CSV",
         code_page=None, cut=0)
def test_generated_text_scores_as_the_full_reading(chars: str, encoding: str, filename: str,
                                                    code_page: str | None, cut: int) -> None:
    data = _encode(chars, encoding)
    assert_same_scores(data[:len(data) - cut], filename, code_page)


@FUZZ
@given(data=st.binary(max_size=600), filename=names, code_page=configured)
def test_arbitrary_bytes_score_as_the_full_reading(data: bytes, filename: str,
                                                   code_page: str | None) -> None:
    assert_same_scores(data, filename, code_page)


@pytest.fixture(scope="module")
def real_heads() -> list[tuple[str, bytes]]:
    """Every corpus file, cut to 70 kB: past the 64 kB some sniffers look at, small enough to
    damage many times."""
    corpus = corpus_dir()
    return [(path.name, path.read_bytes()[:70_000]) for path in sorted(corpus.rglob("*"))
            if path.is_file()]


@FUZZ
@given(data=st.data(), code_page=configured)
def test_damaged_real_files_score_as_the_full_reading(real_heads: list[tuple[str, bytes]],
                                                      data: st.DataObject,
                                                      code_page: str | None) -> None:
    filename, raw = data.draw(st.sampled_from(real_heads))
    encoding = data.draw(st.sampled_from(["as is", *_ENCODINGS]))
    if encoding != "as is":
        raw = _encode(raw.decode("utf-8", errors="replace"), encoding)
    assert_same_scores(damage(raw, data), filename, code_page)


@FUZZ
@given(before=st.integers(390, 410), ends=st.lists(st.sampled_from(["\n", "\r\n", "\r"]),
                                                  min_size=1, max_size=3),
       filler=st.sampled_from(["1,2", "Start,Report,Port", "", "x;y;z", "Area,rt"]),
       header=st.sampled_from(["Height,Area,Area%,RT [min]", "RT;Area;Height", "Area,RT,Name"]),
       padding=st.integers(0, 300))
def test_a_header_near_the_400th_line_scores_as_the_full_reading(
        before: int, ends: list[str], filler: str, header: str, padding: int) -> None:
    """The OpenLab sniffer looks at 400 lines: lines of any end (CR LF, CR, LF), long or short,
    before a header on either side of the limit."""
    lines = [filler + " " * (padding if i % 7 == 0 else 0) for i in range(before)]
    body = "".join(line + ends[i % len(ends)] for i, line in enumerate(lines))
    assert_same_scores((body + header + "\n").encode(), "x_Report.csv")


@FUZZ
@given(rows=st.lists(st.tuples(st.sampled_from(['"SampleName"\t"Channel"', "1,2.5", "Sample Name",
                                               "SampleName\tChannel\tVial", "[Header]", "x"]),
                               st.integers(0, 5000), st.sampled_from(["\n", "\r\n", "\r", ""])),
                     min_size=1, max_size=4),
       filename=names)
def test_long_first_rows_score_as_the_full_reading(rows: list[tuple[str, int, str]],
                                                   filename: str) -> None:
    """First rows read from a cut of the file: rows shorter and longer than the cut."""
    data = "".join(row + "\t" * (length % 3) + "x" * length + end for row, length, end in rows)
    assert_same_scores(data.encode(), filename)


@pytest.mark.parametrize("digits", [10, 4000, 5000, 70_000])
def test_a_long_chemstation_peak_row_scores_as_the_full_reading(digits: int) -> None:
    row = f"1,2.{'5' * digits},BB,0.1,3,4,50\r\n"
    for encoding in ("utf-8", "utf-16-le-bom"):
        assert_same_scores(_encode(row * 2, encoding), "REPORT01.CSV")


@pytest.mark.parametrize("landmark", ["Data File x", "Signal 1: DAD1 A", "---|---|",
                                      "Acq. Operator : me", "Injection Date : today",
                                      "  Area Percent Report  "])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-bom", "utf-16-le-bom", "utf-16-be-bom"])
def test_each_chemstation_landmark_alone_scores_as_the_full_reading(landmark: str,
                                                                     encoding: str) -> None:
    # Short and long files, the landmark first or last; long ones with the landmarks' letters and
    # beginnings all over but no landmark, or with no letters at all (a trace), or lines that
    # start as a landmark does.
    near = "gg Sig Signal A, Signal X, qq Acq. jj Inj PP Percent FF File || -| Area Pe\n"
    trace = "1,2\n" * 9000
    for chars in (landmark, f"x\r\n{landmark}\r\n", f"x\r{landmark}", trace + landmark,
                  f"{landmark}\n{trace}", near * 500 + landmark,
                  near * 500 + "Signal A " + landmark, near * 5 + landmark + trace,
                  near * 30 + landmark + "\n" + trace, near * 500,
                  # lines that start as a landmark does and are not one, before it
                  "x\nSignal table\nSignal A\n" + landmark, "Signal 12345:\n" + landmark):
        assert_same_scores(_encode(chars, encoding), "Report.TXT")


_CHEMSTATION_LANDMARKS = ("Data File x", "Signal 1: DAD1 A", "---|---|", "Acq. Operator : me",
                          "  Area Percent Report  ")


@pytest.mark.parametrize("chosen", range(1 << len(_CHEMSTATION_LANDMARKS)))
@pytest.mark.parametrize("encoding", ["utf-8", "cp1252", "utf-16-le-bom"])
def test_every_set_of_chemstation_landmarks_scores_as_the_full_reading(chosen: int,
                                                                       encoding: str) -> None:
    # Only some sets reach MIN_CONFIDENCE, one without the first line or the table rule among
    # them (a Signal title, Acq. Operator and the Area Percent Report title come to 50).
    landmarks = [m for i, m in enumerate(_CHEMSTATION_LANDMARKS) if chosen >> i & 1]
    for name in ("Report.TXT", "x.txt"):
        for eol in ("\n", "\r\n", "\r"):
            assert_same_scores(_encode(eol.join(["x", *landmarks, "y"]), encoding), name)
            assert_same_scores(_encode(eol.join(landmarks[::-1]), encoding), name)


def test_every_corpus_file_scores_as_the_full_reading() -> None:
    for path in sorted(Path(corpus_dir()).rglob("*")):
        if path.is_file():
            assert_same_scores(path.read_bytes(), path.name)


# --- The helpers against their definitions ----------------------------------------------------


@given(chars=texts)
def test_split_lines_splits_as_the_regex(chars: str) -> None:
    assert text.split_lines(chars) == _lines(chars)


@given(chars=texts, encoding=st.sampled_from(_ENCODINGS), code_page=configured)
def test_may_contain_never_misses_what_the_decoded_text_holds(chars: str, encoding: str,
                                                               code_page: str | None) -> None:
    data = _encode(chars, encoding)
    try:
        decoded, _ = text.decode(data, configured=code_page)
    except ParseError:
        return
    for needle in ("Signal ", "-|-", "Information:", "Data File "):
        assert text.may_contain(data, (needle,), code_page) or needle not in decoded


@given(chars=texts)
def test_control_check_is_the_regex(chars: str) -> None:
    assert chemstation_common.has_control(chars) == bool(chemstation_common._CONTROL.search(chars))


@given(chars=texts)
def test_c1_check_in_bytes_is_the_check_in_text(chars: str) -> None:
    data = chars.encode("utf-8", errors="replace")
    assert text._utf8_has_c1(data) == bool(re.search("[\x80-\x9f]", data.decode("utf-8")))


@given(head=texts, first=texts, then=texts)
@example(head="°C µL\n", first="1,2\n", then="\x85\n")
@example(head="°C µL\n", first="1,2\n", then="°\n\x9f")
def test_c1_check_after_a_remembered_head_is_the_check_in_text(head: str, first: str,
                                                               then: str) -> None:
    # A file found clean leaves its head remembered (up to its last C2 lead byte), and the next
    # file starting with the same bytes is looked through only after them: a C1 control there,
    # or in a head that merely looks alike, is found all the same.
    for chars in (head + first, head + then, head[:-1] + then, then):
        data = chars.encode("utf-8", errors="replace")
        assert text._utf8_has_c1(data) == bool(re.search("[\x80-\x9f]",
                                                         data.decode("utf-8")))


def _decoded(data: bytes | bytearray, code_page: str | None,
             default: str | None) -> tuple[str, str] | str:
    try:
        return text.decode(data, "x.csv", configured=code_page, default=default)
    except ParseError as exc:
        return str(exc)


@FUZZ
@given(chars=texts, encoding=st.sampled_from(_ENCODINGS), code_page=configured,
       default=st.sampled_from([None, "cp1252", "cp1250"]))
@example(chars="a\x85b", encoding="utf-8", code_page=None, default=None)
@example(chars="Temp: 30 °C", encoding="cp1252", code_page=None, default=None)
def test_the_utf8_shortcut_decodes_as_the_full_decision(chars: str, encoding: str,
                                                        code_page: str | None,
                                                        default: str | None) -> None:
    # A bytearray is not bytes: it goes through ``_decide`` step by step (and is never
    # remembered), what the shortcut for small UTF-8 bytes must always agree with.
    data = _encode(chars, encoding)
    assert _decoded(data, code_page, default) == _decoded(bytearray(data), code_page, default)


def _version_reference(data: bytes, filename: str, versions: tuple[str, ...], suffix: str) -> int:
    found = binary.pascal(data[:8])
    if found in versions and len(data) > 0x120:
        return 98
    if found is not None and found.isdigit() and filename.lower().endswith(suffix):
        return 60
    return 0


@given(first=st.integers(0, 12), version=st.sampled_from(["", "30", "131", "179", "1a", "1234567"]),
       rest=st.binary(max_size=400), filename=st.sampled_from(["a.ch", "A.CH", "b.uv", "c"]))
def test_a_binary_version_sniff_scores_as_reading_the_version(first: int, version: str,
                                                              rest: bytes, filename: str) -> None:
    # A first byte that cannot be the length of a version within the first 8 bytes lets the
    # file go before the version is read.
    data = bytes([first]) + version.encode() + rest
    for versions, suffix in ((("30", "131", "179"), ".ch"), (("131",), ".uv")):
        assert binary.sniff_version(data, filename, versions, suffix) == \
            _version_reference(data, filename, versions, suffix)


@given(data=st.binary(max_size=200), default=st.sampled_from([None, "cp1252", "cp1250"]))
def test_the_utf8_shortcut_decodes_arbitrary_bytes_as_the_full_decision(
        data: bytes, default: str | None) -> None:
    assert _decoded(data, None, default) == _decoded(bytearray(data), None, default)


@given(data=st.binary(max_size=200))
def test_foreign_code_page_check_is_skipped_only_when_it_cannot_refuse(data: bytes) -> None:
    try:
        decoded = data.decode("cp1252")
    except UnicodeDecodeError:
        return
    if not data.translate(None, text._NOT_SUSPECT):
        text._refuse_foreign_code_page(decoded)  # must not raise


@given(cell=st.text(max_size=20) | st.sampled_from(list(agilent_openlab.COLUMNS)).map(
    lambda key: key.upper()))
def test_openlab_column_lookup_is_the_normalised_lookup(cell: str) -> None:
    assert agilent_openlab._column(cell) == agilent_openlab.COLUMNS.get(_norm(cell))


@pytest.mark.parametrize("tail", ["", "EOT\n", "EOT\n\n \n", "EOT\nEOT\n", "1,2\nEOT\nx\n",
                                  "x\n", "EOT\n1,2\n", "  \n\t\n"])
@pytest.mark.parametrize("rows", [0, 1, 5, 19, 20, 21, 2800])
@pytest.mark.parametrize("before", ["", "Time,Value\n", "Title\nTime,Value\n", "1 x\n"])
@pytest.mark.parametrize("width", [1, 700])
def test_the_last_trace_line_looked_at_scores_as_the_full_reading(tail: str, rows: int,
                                                                 before: str,
                                                                 width: int) -> None:
    # trace-csv rules a file out by the last of its first lines it reads (after a line the
    # 8 KiB cut may break and an EOT): blanks, terminators and cuts around it (rows of 700
    # characters: the cut falls inside the first 21 lines).
    chars = before + "".join(f"{n:0>{width}}.5,{n}\n" for n in range(rows)) + tail
    for filename in ("a.dx_DAD1A.CSV", "x.csv"):
        assert_same_scores(chars.encode(), filename)
        assert_same_scores(chars.replace("\n", "\r\n").encode(), filename)


# --- ascii_bytes and the Result.xml sniffer against the code they replaced ---------------------


def _ascii_bytes_reference(data: bytes, configured: str | None,
                           default: str | None) -> bytes | None:
    """``text.ascii_bytes`` as it was: the UTF-16 BOMs first, a codec lookup every call."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None
    try:
        transparent = codecs.lookup(configured or default or text.machine_code_page()).name \
            in text._ASCII_TRANSPARENT
    except LookupError:
        transparent = False
    if not transparent:
        return None
    if data.startswith(codecs.BOM_UTF8):
        data = data[3:]
        return data[3:] if data.startswith(codecs.BOM_UTF8) else data
    return data


_BOM_PREFIXES = [b"", codecs.BOM_UTF8, codecs.BOM_UTF8 * 2, codecs.BOM_UTF16_LE,
                 codecs.BOM_UTF16_BE, b"\xef\xbb", b"\xff", b"\xfe", b"\xee\xbb\xbf", b"\xf0"]
code_pages = st.sampled_from([None, "utf-8", "UTF8", "cp1250", "latin-1", "shift_jis", "big5",
                              "cp037", "no-such-code-page"])


@FUZZ
@given(prefix=st.sampled_from(_BOM_PREFIXES), chars=texts, encoding=st.sampled_from(_ENCODINGS),
       rest=st.binary(max_size=20), configured=code_pages, default=code_pages)
@example(prefix=b"", chars="", encoding="utf-8", rest=b"", configured=None, default=None)
def test_ascii_bytes_is_the_plain_definition(prefix: bytes, chars: str, encoding: str,
                                             rest: bytes, configured: str | None,
                                             default: str | None) -> None:
    # Each call twice: the second answers from what the first remembered of the code page.
    for data in (prefix + _encode(chars, encoding), prefix + rest, prefix):
        for _ in range(2):
            assert text.ascii_bytes(data, configured, default) == \
                _ascii_bytes_reference(data, configured, default)


def test_ascii_bytes_follows_the_machines_code_page(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a Taiwanese Windows PC (Big5, not ASCII-transparent) only decoding can tell."""
    data = b"Data File x\r\n"
    assert text.ascii_bytes(data) == data
    monkeypatch.setattr(text.locale, "getencoding", lambda: "cp950", raising=False)
    monkeypatch.setattr(text.locale, "getpreferredencoding", lambda _=True: "cp950")
    text.machine_code_page.cache_clear()
    try:
        assert text.ascii_bytes(data) is None
        assert text.ascii_bytes(data, "cp1252") == data
    finally:
        monkeypatch.undo()
        text.machine_code_page.cache_clear()
    assert text.ascii_bytes(data) == data


def _result_xml_reference(data: bytes) -> int:
    """chemstation_xml.sniff as it was, before a file had to hold a "<"."""
    head = data[:4096]
    name = "ChemStationResult"
    return 100 if name.encode() in head or name.encode("utf-16-le") in head else 0


_XML_PIECES = ["<", ">", "<?xml version=\"1.0\"?>", "ChemStationResult", "<ChemStationResult>",
               "ChemStation", "Result", "\x00", " ", "\r\n", "a", "µ"]


@FUZZ
@given(pieces=st.lists(st.sampled_from(_XML_PIECES) | st.text(max_size=3), max_size=12),
       encoding=st.sampled_from(_ENCODINGS), pad=st.sampled_from([0, 4070, 4080, 4090, 5000]))
@example(pieces=["ChemStationResult"], encoding="utf-8", pad=0)
@example(pieces=["ChemStationResult"], encoding="utf-16-le-bom", pad=0)
@example(pieces=["<ChemStationResult"], encoding="utf-16-be-bom", pad=0)
def test_result_xml_sniff_is_the_name_search_where_an_element_can_open(pieces: list[str],
                                                                        encoding: str,
                                                                        pad: int) -> None:
    # Padding moves the landmarks across the 4 KiB head the sniffer reads.
    data = _encode(" " * pad + "".join(pieces), encoding)
    expected = _result_xml_reference(data) if b"<" in data[:4096] else 0
    assert chemstation_xml.sniff(data, "Result.xml", ParserOptions()) == expected


def test_a_file_naming_the_root_without_any_element_is_not_result_xml() -> None:
    """Text that mentions ChemStationResult but opens no element could never parse as XML."""
    note = b"Exported ChemStationResult files are in the run folder.\r\n"
    assert chemstation_xml.sniff(note, "notes.txt", ParserOptions()) == 0
    assert chemstation_xml.sniff(b"<" + note, "notes.txt", ParserOptions()) == 100
    real = (corpus_dir() / "agilent-chemstation-folders" / "V181.D" / "Result.xml").read_bytes()
    assert chemstation_xml.sniff(real[:4096], "Result.xml", ParserOptions()) == 100


def _may_contain_reference(data: bytes, needles: tuple[str, ...], configured: str | None,
                           default: str | None) -> bool:
    """``text.may_contain`` as it was: each needle encoded on every call."""
    if data.startswith(codecs.BOM_UTF16_LE):
        codec = "utf-16-le"
    elif data.startswith(codecs.BOM_UTF16_BE):
        codec = "utf-16-be"
    elif _ascii_bytes_reference(data, configured, default) is None:
        return True
    else:
        codec = "ascii"
    return any(needle.encode(codec) in data for needle in needles)


_NEEDLE_SETS = [("Signal ",), ("-|-", "Data File "), ("Information:",), ("Maxchannels:",),
                chemstation_txt._LANDMARKS, ("a", "Area Percent Report"), ()]


@FUZZ
@given(prefix=st.sampled_from(_BOM_PREFIXES), chars=texts, encoding=st.sampled_from(_ENCODINGS),
       needles=st.sampled_from(_NEEDLE_SETS), configured=code_pages, default=code_pages)
@example(prefix=b"", chars="Signal 1:", encoding="utf-16-le-bom", needles=("Signal ",),
         configured=None, default=None)
def test_may_contain_is_the_plain_definition(prefix: bytes, chars: str, encoding: str,
                                             needles: tuple[str, ...], configured: str | None,
                                             default: str | None) -> None:
    data = prefix + _encode(chars, encoding)
    for _ in range(2):  # the second call with the needles already encoded
        assert text.may_contain(data, needles, configured, default) == \
            _may_contain_reference(data, needles, configured, default)
