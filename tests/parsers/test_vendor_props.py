"""Property tests for the Shimadzu, Chromeleon, Empower and EZChrom ASCII parsers.

(a) Whatever bytes arrive — random, or a real export with bytes flipped, cut or inserted — the
only exception that escapes is ParseError; (b) a generated valid file round-trips with no row lost
or changed; (c) each corpus file is claimed (score >= 50) only by its own parser among these.
``ACCU_FUZZ_EXAMPLES=10000`` turns the same tests into the long fuzzing run.
"""

from __future__ import annotations

from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.corpus import corpus_dir
from support.fuzz import FUZZ

from worker.parsers import chromeleon, empower, ezchrom_asc, shimadzu
from worker.parsers.base import ParsedFile, ParseError
from worker.parsers.options import NO_OPTIONS

PARSERS: dict[str, ModuleType] = {"shimadzu": shimadzu, "chromeleon": chromeleon,
                                  "empower": empower, "ezchrom-asc": ezchrom_asc}
OWN_FILES = {
    "shimadzu": "shimadzu-labsolutions/new-shim-1.txt",
    "chromeleon": "thermo-chromeleon/Adenosine Stadards_ 0.5 mM.txt",
    "empower": "waters-empower/results1844.arw",
    "ezchrom-asc": "ezchrom-asc/2023-06-29-014-excerpt.dat.asc",
}
# Further real files of the same formats (variants): claimed by their parser alone as well.
MORE_OWN_FILES = {
    "shimadzu-labsolutions/STD 1 100-excerpt.txt": "shimadzu",
    "thermo-chromeleon/20170526_MME_AA_STD-Mix2-excerpt.txt": "chromeleon",
    "ezchrom-asc/05_25_D-excerpt.asc": "ezchrom-asc",
}


@pytest.fixture(scope="module")
def real_files() -> dict[str, bytes]:
    corpus = corpus_dir()
    return {parser: (corpus / path).read_bytes() for parser, path in OWN_FILES.items()}


def _only_parse_error(parser: ModuleType, data: bytes) -> None:
    """Parse must return a valid model or raise ParseError; sniff must stay in 0..100."""
    assert 0 <= parser.sniff(data, "fuzz.txt", NO_OPTIONS) <= 100
    try:
        result = parser.parse(data, "fuzz.txt", NO_OPTIONS)
    except ParseError as exc:
        assert exc.reason
        return
    assert isinstance(result, ParsedFile) and result.signals


# --- (a) robustness -------------------------------------------------------------------------

@pytest.mark.parametrize("parser_name", sorted(PARSERS))
@FUZZ
@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes_raise_only_parse_error(parser_name: str, data: bytes) -> None:
    _only_parse_error(PARSERS[parser_name], data)


@st.composite
def mutations(draw: st.DrawFn, original: bytes) -> bytes:
    """A real file with a few bytes replaced, deleted, inserted, or the tail cut off."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        action = draw(st.sampled_from(["replace", "delete", "insert", "truncate"]))
        chunk = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(
            [b"\t", b",", b".", b"\r\n", b"\r", b"\n", b"[", b"]", b'"', b"-", b"e", b"n.a.",
             b"\xb5", b"\x00", b"1e999", b"nan"]))
        if action == "replace":
            data[at:at + len(chunk)] = chunk
        elif action == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        elif action == "insert":
            data[at:at] = chunk
        else:
            del data[at:]
    return bytes(data)


@pytest.mark.parametrize("parser_name", sorted(PARSERS))
@FUZZ
@given(data=st.data())
def test_mutated_real_files_raise_only_parse_error(parser_name: str, data: st.DataObject,
                                                   real_files: dict[str, bytes]) -> None:
    mutated = data.draw(mutations(real_files[parser_name]))
    _only_parse_error(PARSERS[parser_name], mutated)


# --- (b) round trips ------------------------------------------------------------------------

times_st = st.lists(st.integers(0, 10_000_000), min_size=1, max_size=300, unique=True).map(sorted)
values_st = st.integers(-10**12, 10**12)


def _fixed(micro: int, decimal_comma: bool = False) -> str:
    """A number with six decimals, e.g. 1234567 -> '1.234567'; exactly what float() reads back."""
    text = f"{'-' if micro < 0 else ''}{abs(micro) // 10**6}.{abs(micro) % 10**6:06d}"
    return text.replace(".", ",") if decimal_comma else text


@FUZZ
@given(times=times_st, data=st.data(), comma=st.booleans(),
       areas=st.lists(st.integers(0, 10**10), max_size=30),
       name=st.text(st.characters(codec="cp1252", exclude_categories=["Cc"],
                                  exclude_characters=",[]"), max_size=20))
def test_shimadzu_round_trip(times: list[int], data: st.DataObject, comma: bool,
                             areas: list[int], name: str) -> None:
    d = "," if comma else "\t"
    values = data.draw(st.lists(values_st, min_size=len(times), max_size=len(times)))
    rts = [_fixed(1000 * (i + 1)) for i in range(len(areas))]
    lines = ["[Header]", f"Application Name{d}LabSolutions", "",
             "[Sample Information]", f"Sample Name{d}{name}", "",
             "[Peak Table(Detector A)]", f"# of Peaks{d}{len(areas)}"]
    if areas:
        lines.append(d.join(["Peak#", "R.Time", "Area", "Height", "Mark"]))
        lines += [d.join([str(i + 1), rt, str(area), "7", " V "])
                  for i, (rt, area) in enumerate(zip(rts, areas, strict=True))]
    wavelength = data.draw(st.sampled_from([None, "", "nm", "254"]), label="Wavelength(nm)")
    lines += ["", "[LC Chromatogram(Detector A-Ch1)]", f"# of Points{d}{len(times)}",
              f"Intensity Units{d}mV", f"Intensity Multiplier{d}1"]
    if wavelength is not None:
        lines.append(f"Wavelength(nm){d}{wavelength}")
    lines.append(f"R.Time (min){d}Intensity")
    lines += [f"{_fixed(t)}{d}{v}" for t, v in zip(times, values, strict=True)]
    parsed = shimadzu.parse(("\r\n".join(lines) + "\r\n").encode("utf-8"), "gen.txt", NO_OPTIONS)
    (signal,) = parsed.signals
    assert parsed.sample_name == (name.strip() or None)
    assert signal.peaks is not None and [p.area for p in signal.peaks] == areas
    assert [p.rt_min for p in signal.peaks] == [float(rt) for rt in rts]
    assert signal.total_area == sum(areas)
    assert signal.wavelength_nm == (254 if wavelength == "254" else None)
    assert signal.trace is not None
    assert list(signal.trace.times) == [float(_fixed(t)) for t in times]
    assert list(signal.trace.values) == [float(v) for v in values]


@FUZZ
@given(times=times_st, data=st.data(), comma=st.booleans(), version7=st.booleans(),
       trailing_tab=st.booleans())
def test_chromeleon_round_trip(times: list[int], data: st.DataObject, comma: bool,
                               version7: bool, trailing_tab: bool) -> None:
    values = data.draw(st.lists(values_st, min_size=len(times), max_size=len(times)))
    end = "\t" if trailing_tab else ""
    rows = [f"{_fixed(t, comma)}\t{'n.a.' if i == 0 and version7 else _fixed(10**5, comma)}\t"
            f"{_fixed(v, comma)}{end}" for i, (t, v) in enumerate(zip(times, values, strict=True))]
    if version7:
        head = ["Injection Information:", "Injection\tS1", "", "Chromatogram Data Information:",
                f"Data Points\t{len(rows)}", "", "Chromatogram Data:",
                "Time (min)\tStep (s)\tValue (mAU)"]
    else:
        head = ["Sample Information:", "Sample\tS1", "", "Raw Data Header Information:",
                f"Data Points\t{len(rows)}", "", "Raw Data:", "Time(min)\tStep(sec)\tValue(mAU)"]
    parsed = chromeleon.parse(("\r\n".join(head + rows) + "\r\n").encode("utf-8"), "gen.txt",
                              NO_OPTIONS)
    (signal,) = parsed.signals
    assert parsed.sample_name == "S1" and signal.trace is not None
    assert list(signal.trace.times) == [float(_fixed(t)) for t in times]
    assert list(signal.trace.values) == [float(_fixed(v)) for v in values]


@FUZZ
@given(times=times_st, data=st.data(),
       sample=st.text(st.characters(codec="cp1252", exclude_categories=["Cc"],
                                    exclude_characters='"'), max_size=20))
def test_empower_round_trip(times: list[int], data: st.DataObject, sample: str) -> None:
    values = data.draw(st.lists(st.floats(allow_nan=False, allow_infinity=False),
                                min_size=len(times), max_size=len(times)))
    if data.draw(st.booleans(), label="key/value header"):
        text = f'"SampleName"\t"{sample}"\r"Channel"\t"ChA 254nm"\r"System Name"\t"S"\r'
    else:
        text = f'"SampleName"\t"Channel"\r"{sample}"\t"ChA 254nm"\r'
    text += "".join(f"{_fixed(t)}\t{v!r}\r" for t, v in zip(times, values, strict=True))
    parsed = empower.parse(text.encode("utf-8"), "gen.arw", NO_OPTIONS)
    (signal,) = parsed.signals
    assert parsed.sample_name == (sample.strip() or None) and signal.wavelength_nm == 254.0
    assert signal.trace is not None
    assert list(signal.trace.times) == [float(_fixed(t)) for t in times]
    assert list(signal.trace.values) == values


# --- (c) cross-sniffing ---------------------------------------------------------------------

def test_each_corpus_file_is_claimed_only_by_its_own_parser() -> None:
    corpus = corpus_dir()
    own = {str(corpus / path): parser for parser, path in OWN_FILES.items()}
    own |= {str(corpus / path): parser for path, parser in MORE_OWN_FILES.items()}
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    assert len(files) > len(own)
    for path in files:
        data = path.read_bytes()
        claims = {name for name, parser in PARSERS.items()
                  if parser.sniff(data, path.name, NO_OPTIONS) >= 50}
        expected = {own[str(path)]} if str(path) in own else set()
        assert claims == expected, f"{path.relative_to(corpus)} claimed by {claims or 'none'}"
