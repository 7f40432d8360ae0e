"""Detection picks the most confident parser, a tie going to the first name in order, whatever
order the parsers were registered in."""

from __future__ import annotations

from itertools import permutations
from pathlib import Path
from types import SimpleNamespace

import openlab_reference
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.corpus import CORPUS
from support.fuzz import FUZZ
from support.reports import GenPeak, report, report_bytes
from test_openlab_props import peak_tables
from test_sniff_fast_paths import _ENCODINGS, _PIECES, _encode, configured, names, texts

from worker import parsers
from worker.parsers import agilent_openlab
from worker.parsers.base import CERTAIN, ParseError
from worker.parsers.options import NO_OPTIONS, ParserOptions


def _parser(name: str, score: int) -> SimpleNamespace:
    return SimpleNamespace(name=name, sniff=lambda data, filename, options: score)


@pytest.mark.parametrize(("scores", "winner"), [
    ({"b": 70, "a": 70, "c": 60}, "a"),
    ({"b": 90, "a": 70, "c": 90}, "b"),
    ({"z": 50, "y": 49}, "z"),
    ({"m": 80}, "m"),
])
def test_the_highest_score_wins_and_a_tie_goes_to_the_first_name(
        monkeypatch: pytest.MonkeyPatch, scores: dict[str, int], winner: str) -> None:
    for order in permutations(scores):
        registry = {name: _parser(name, scores[name]) for name in order}
        monkeypatch.setattr(parsers, "registered", lambda registry=registry: registry)
        assert parsers.detect(b"x\n", "f.csv").name == winner, order


def test_no_score_at_the_threshold_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = {"a": _parser("a", 49), "b": _parser("b", 0)}
    monkeypatch.setattr(parsers, "registered", lambda: registry)
    with pytest.raises(ParseError, match="unrecognised format"):
        parsers.detect(b"x\n", "f.csv")


# --- Stopping at CERTAIN ----------------------------------------------------------------------
# The registry stops asking once a sniffer says CERTAIN, and the OpenLab sniffer now says it of
# a Report it alone can claim. Detection must still name the parser the full pass named before:
# every sniffer asked, OpenLab's as it was (``openlab_reference``, at most 90).


def _every_sniffer(data: bytes, filename: str, options: ParserOptions) -> str:
    """The parser the registry named before: every sniffer on the head, the highest score, a
    tie to the first name; or the ParseError's reason."""
    first = parsers.head(data)
    scores = {name: (openlab_reference.sniff if name == agilent_openlab.name else p.sniff)(
        first, filename, options) for name, p in parsers.registered().items()}
    best = min(scores, key=lambda name: (-scores[name], name))
    return best if scores[best] >= parsers.MIN_CONFIDENCE else "unrecognised"


def _detected(data: bytes, filename: str, options: ParserOptions = NO_OPTIONS) -> str:
    try:
        return parsers.detect(data, filename, options).name
    except ParseError:  # unrecognised, or text whose bytes break (the same with any sniffer)
        return "unrecognised"


def _corpus_files() -> list[Path]:
    folders = [CORPUS, Path(__file__).resolve().parents[2].parent / "shared" / "corpus"]
    return sorted(p for folder in folders if folder.is_dir() for p in folder.rglob("*")
                  if p.is_file())


@pytest.mark.parametrize("path", _corpus_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_corpus_file_is_detected_as_by_every_sniffer(path: Path) -> None:
    data = path.read_bytes()
    assert _detected(data, path.name) == _every_sniffer(data, path.name, NO_OPTIONS)


def test_a_report_is_certain_and_what_else_it_could_be_is_not() -> None:
    data = report_bytes(1)
    assert agilent_openlab.sniff(data, "x.csv", NO_OPTIONS) == CERTAIN
    assert openlab_reference.sniff(data, "x.csv", NO_OPTIONS) == 90
    # Chromeleon's block titles in the preamble: it could outscore the full header, so the
    # Report is not CERTAIN and every sniffer is asked.
    text = data.decode()
    titled = text.replace("Signal table\n", "Chromatogram Data Information:\nChromatogram Data:\n")
    assert agilent_openlab.sniff(titled.encode(), "x.csv", NO_OPTIONS) == 90
    assert _detected(titled.encode(), "x.csv") == "chromeleon"
    for other in ("\ufeff" + text, text):  # a UTF-8 BOM changes nothing
        assert _detected(other.encode(), "x.csv") == agilent_openlab.name
    assert agilent_openlab.sniff(text.encode("utf-16"), "x.csv", NO_OPTIONS) == 90


def test_a_score_over_the_scale_counts_as_certain(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = {"b": _parser("b", 250), "a": _parser("a", CERTAIN), "c": _parser("c", 300)}
    monkeypatch.setattr(parsers, "registered", lambda: registry)
    assert parsers.detect(b"x\n", "f.csv").name == "a"


_REPORT_PIECES = [*_PIECES, "Acquisition Method:,", "Acquisition Method:;", "Information:",
                  "Chromatogram Data Information:", "\nChromatogram Data:\n", "[Header]\n",
                  "Version:", "\nMaxchannels:"]


@FUZZ
@given(peaks=peak_tables(), european=st.booleans(), eol=st.sampled_from(["\n", "\r\n"]),
       before=st.lists(st.sampled_from(_REPORT_PIECES), max_size=6).map("".join),
       inside=st.lists(st.sampled_from(_REPORT_PIECES), max_size=6).map("".join),
       encoding=st.sampled_from(_ENCODINGS), filename=names, code_page=configured)
def test_generated_reports_are_detected_as_by_every_sniffer(
        peaks: list[GenPeak], european: bool, eol: str, before: str, inside: str,
        encoding: str, filename: str, code_page: str | None) -> None:
    """Reports with other formats' landmarks before them or in their preamble."""
    text = report(peaks, delimiter=";" if european else ",", decimal_comma=european, eol=eol)
    text = before + text.replace("Signal table", "Signal table" + eol + inside, 1)
    options = ParserOptions(encodings=(("*", code_page),) if code_page else ())
    data = _encode(text, encoding)
    assert _detected(data, filename, options) == _every_sniffer(data, filename, options)


@FUZZ
@given(chars=texts, encoding=st.sampled_from(_ENCODINGS), filename=names, code_page=configured)
def test_generated_text_is_detected_as_by_every_sniffer(chars: str, encoding: str,
                                                        filename: str,
                                                        code_page: str | None) -> None:
    options = ParserOptions(encodings=(("*", code_page),) if code_page else ())
    data = _encode(chars, encoding)
    assert _detected(data, filename, options) == _every_sniffer(data, filename, options)
