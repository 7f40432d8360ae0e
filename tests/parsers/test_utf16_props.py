"""A UTF-16 export cut short or broken is rejected with the line where its text breaks, never as
"unrecognised format" (which the sniffers, reading only text that decodes, used to give).

Property: any UTF-16 file — the corpus's ChemStation reports and method files, generated OpenLab
reports in either byte order — cut at an odd byte count, or given a lone surrogate, is rejected
with a line number. End to end: the one-shot ingest says so for a ChemStation ``Report.TXT``.
"""

from __future__ import annotations

import codecs
import random
import subprocess
import sys
from functools import cache
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from support.corpus import corpus_dir
from support.fuzz import FUZZ
from support.reports import random_peaks, report

from worker import parsers
from worker.parsers.base import ParseError

REPORT_TXT = ("agilent-chemstation", "001F0101.D", "Report.TXT")


@cache
def corpus_utf16() -> tuple[tuple[str, bytes], ...]:
    """(name, bytes) of every UTF-16 file of the corpus, recognised formats or not."""
    files = sorted(p for p in corpus_dir().rglob("*") if p.is_file())
    return tuple((p.name, p.read_bytes()) for p in files
                 if p.read_bytes()[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))


def generated(seed: int, big_endian: bool) -> tuple[str, bytes]:
    text = report(random_peaks(random.Random(seed)), sample_name="Lot µ-7", eol="\r\n")
    if big_endian:
        return "gen_Report.csv", codecs.BOM_UTF16_BE + text.encode("utf-16-be")
    return "gen_Report.csv", codecs.BOM_UTF16_LE + text.encode("utf-16-le")


@st.composite
def utf16_files(draw: st.DrawFn) -> tuple[str, bytes]:
    if draw(st.booleans()):
        return draw(st.sampled_from(corpus_utf16()))
    return generated(draw(st.integers(0, 10**6)), draw(st.booleans()))


def rejected_line(data: bytes, name: str) -> int | None:
    try:
        parsers.parse(data, name)
    except ParseError as exc:
        assert "unrecognised format" not in exc.reason, exc.reason
        return exc.line
    raise AssertionError(f"{name} ({len(data)} bytes) was not rejected")


@FUZZ
@given(file=utf16_files(), data=st.data())
def test_utf16_cut_at_an_odd_length_is_rejected_with_its_line(
        file: tuple[str, bytes], data: st.DataObject) -> None:
    name, raw = file
    cut = data.draw(st.integers(1, (len(raw) - 1) // 2)) * 2 + 1  # odd, BOM kept, < len(raw)
    line = rejected_line(raw[:cut], name)
    # The line where decoding stopped: every line before it decoded whole.
    assert line == raw[:cut - 1].decode("utf-16").count("\n") + 1


@FUZZ
@given(file=utf16_files(), data=st.data())
def test_utf16_with_a_lone_surrogate_is_rejected_with_its_line(
        file: tuple[str, bytes], data: st.DataObject) -> None:
    name, raw = file
    at = data.draw(st.integers(1, len(raw) // 2 - 1)) * 2  # a code unit boundary after the BOM
    lone = "\udc00".encode("utf-16-be" if raw.startswith(codecs.BOM_UTF16_BE) else "utf-16-le",
                           "surrogatepass")
    line = rejected_line(raw[:at] + lone + raw[at:], name)
    assert line == raw[:at].decode("utf-16", "ignore").count("\n") + 1


def test_one_shot_ingest_names_the_line_of_a_cut_report(tmp_path: Path) -> None:
    """A ChemStation Report.TXT (UTF-16) cut short in its .D folder, and one with a broken
    surrogate: both rejected with the line, neither as an unrecognised format."""
    raw = corpus_dir().joinpath(*REPORT_TXT).read_bytes()
    cut = len(raw) // 2 | 1
    folder = tmp_path / "exports" / "seq"
    (folder / "001F0101.D").mkdir(parents=True)
    (folder / "001F0101.D" / "Report.TXT").write_bytes(raw[:cut])
    (folder / "001F0102.D").mkdir()
    (folder / "001F0102.D" / "Report.TXT").write_bytes(raw[:600] + b"\x00\xdc" + raw[600:])
    done = subprocess.run(
        [sys.executable, "-m", "worker", "ingest", str(folder), "--inbox", str(tmp_path / "in"),
         "--data-dir", str(tmp_path / "data")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "0 ingested, 2 rejected" in done.stdout, done.stdout
    cut_line = raw[:cut - 1].decode("utf-16").count("\n") + 1
    broken_line = raw[:600].decode("utf-16").count("\n") + 1
    lines = [line for line in done.stdout.splitlines() if line.startswith("REJECTED")]
    assert sorted(lines) == [
        f"REJECTED seq/001F0101.D/Report.TXT: line {cut_line}: cannot decode as utf-16-le: "
        f"truncated data at byte {cut - 1} (of {cut}; a UTF-16 file cut "
        "short or corrupted?)",
        f"REJECTED seq/001F0102.D/Report.TXT: line {broken_line}: cannot decode as utf-16-le: "
        f"illegal encoding at byte 600 (of {len(raw) + 2}; a UTF-16 file cut short or "
        "corrupted?)"]
