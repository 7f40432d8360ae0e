"""The parser contract (worker/parsers/README.md): what every registered parser declares, the
confidence scale its scores keep to, and options that reach a parser only as its argument."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from support.corpus import corpus_bytes, corpus_dir

from worker import parsers
from worker.consume import sample_names
from worker.parsers import chemstation_csv, trace_csv
from worker.parsers.base import CERTAIN, NOT_MINE, ParsedFile, ParseError
from worker.parsers.options import NO_OPTIONS, ParserOptions, TableMapping

# A trace whose header only cp1250 reads right: read as cp1252, "ł" between two letters is the
# sign "³", which the decoder refuses rather than guess.
CP1250_TRACE = "Czas [min],Głowacki [mAU]\r\n0.1,1.5\r\n0.2,2.5\r\n".encode("cp1250")
CP1250 = ParserOptions(encodings=(("*.csv", "cp1250"),))
CP1252 = ParserOptions(encodings=(("*.csv", "cp1252"),))
# Claims every file for the table parser too, so that its scores are checked on the corpus.
EVERY_TABLE = ParserOptions(
    tables=(TableMapping(files=["*"], columns={"rt": "RT", "area": "Area"}),))


def _positional(function: object) -> list[str]:
    parameters = inspect.signature(function).parameters.values()  # type: ignore[arg-type]
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


@pytest.mark.parametrize("name", sorted(parsers.registered()))
def test_every_parser_declares_the_contract(name: str) -> None:
    parser = parsers.registered()[name]
    assert parser.name == name and parser.version and parser.display_name.strip()
    assert parser.extensions and all(
        ext.startswith(".") and ext == ext.lower() and len(ext) > 1 for ext in parser.extensions)
    # Three required arguments, none hidden behind a default or a context.
    for function in (parser.sniff, parser.parse):
        assert _positional(function) == ["data", "filename", "options"], function
        assert all(p.default is inspect.Parameter.empty
                   for p in inspect.signature(function).parameters.values())
    assert not hasattr(parser, "configurable")


def _corpus() -> Iterator[tuple[str, bytes]]:
    for path in sorted(corpus_dir().rglob("*")):
        if path.is_file() and path.name != "README.md":
            yield path.name, path.read_bytes()


def test_sniff_scores_stay_on_the_scale() -> None:
    files = [*_corpus(), ("empty.csv", b""), ("nul.txt", b"\x00" * 64),
             ("CP.csv", CP1250_TRACE)]
    for filename, data in files:
        for options in (NO_OPTIONS, CP1250, EVERY_TABLE):
            for name, parser in parsers.registered().items():
                score = parser.sniff(data, filename, options)
                assert isinstance(score, int)
                assert NOT_MINE <= score <= CERTAIN, (name, filename, score)


def test_configured_code_page_reaches_the_parser_as_its_argument() -> None:
    with pytest.raises(ParseError, match="encodings"):
        trace_csv.parse(CP1250_TRACE, "run.csv", NO_OPTIONS)
    parsed = trace_csv.parse(CP1250_TRACE, "run.csv", CP1250)
    assert (parsed.encoding, parsed.signals[0].name) == ("cp1250", "Głowacki [mAU]")
    # The glob is matched against the name the parser is given.
    with pytest.raises(ParseError):
        trace_csv.parse(CP1250_TRACE, "run.txt", CP1250)
    # Through the registry alike, and nothing lingers from the call before.
    assert parsers.parse(CP1250_TRACE, "run.csv", CP1250).signals[0].name == "Głowacki [mAU]"
    with pytest.raises(ParseError):
        parsers.parse(CP1250_TRACE, "run.csv")


def test_two_threads_with_different_options_do_not_interfere() -> None:
    rounds = 200
    start = threading.Barrier(3)
    seen: dict[str, set[str]] = {"cp1250": set(), "cp1252": set(), "none": set()}

    def work(key: str, options: ParserOptions) -> None:
        start.wait()
        for _ in range(rounds):
            try:
                seen[key].add(parsers.parse(CP1250_TRACE, "run.csv", options).signals[0].name)
            except ParseError:
                seen[key].add("rejected")

    threads = [threading.Thread(target=work, args=args)
               for args in (("cp1250", CP1250), ("cp1252", CP1252), ("none", NO_OPTIONS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert seen == {"cp1250": {"Głowacki [mAU]"}, "cp1252": {"G³owacki [mAU]"},
                    "none": {"rejected"}}


def test_the_report_set_goes_through_the_registry() -> None:
    members = {name: corpus_bytes("agilent-chemstation", "001F0101.D", name)
               for name in ("Report00.CSV", "REPORT01.CSV", "REPORT02.CSV")}
    through_registry = parsers.parse_set(members, NO_OPTIONS)
    assert through_registry == chemstation_csv.parse_set(members, NO_OPTIONS)
    assert [s.name for s in through_registry.signals] == ["FID1 A", "TCD2 B"]
    with pytest.raises(ParseError, match="no set parser"):
        parsers.parse_set({"notes.txt": b"hello\n"}, NO_OPTIONS)


def test_a_two_argument_parser_is_adapted_without_options() -> None:
    calls: list[tuple[bytes, str]] = []

    def sniff(data: bytes, filename: str) -> int:
        calls.append((data, filename))
        return 77

    def parse(data: bytes, filename: str) -> ParsedFile:
        raise ParseError("old parser ran", filename=filename)

    old = SimpleNamespace(name="old-format", version="0.1", sniff=sniff, parse=parse)
    adapted = parsers.adapt(old)
    assert adapted.sniff(b"x", "a.old", CP1250) == 77 and calls == [(b"x", "a.old")]
    assert (adapted.display_name, adapted.extensions) == ("old-format", ())
    with pytest.raises(ParseError, match="old parser ran"):
        adapted.parse(b"x", "a.old", CP1250)
    with pytest.raises(TypeError, match="lacks"):
        parsers.adapt(SimpleNamespace(name="half", version="1", sniff=sniff))


def test_sample_names_strip_the_extensions_the_parsers_declare(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for ext in parsers.extensions():
        assert sample_names.stem(f"P-0142_Inj_1{ext.upper()}") == "P-0142_Inj_1", ext
    # A third party's extension is stripped as soon as its parser is registered.
    sample_names._suffixes.cache_clear()
    monkeypatch.setattr(parsers, "extensions", lambda: (".csv", ".raw42"))
    try:
        assert sample_names.stem("S-7_Inj_2.raw42") == "S-7_Inj_2"
        assert sample_names.stem("S-7.arw") == "S-7.arw"
    finally:
        sample_names._suffixes.cache_clear()
