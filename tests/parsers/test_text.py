"""Decoding decisions of worker/parsers/text.py: exact or rejected with a reason, never garbage."""

from __future__ import annotations

import codecs

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.parsers.base import ParseError
from worker.parsers.options import ParserOptions
from worker.parsers.text import decode, parse_number


def test_utf16_with_bom_cut_to_an_odd_byte_count_is_a_parse_error() -> None:
    data = codecs.BOM_UTF16_LE + "Peak\r\n1\t2.5\r\n".encode("utf-16-le")
    with pytest.raises(ParseError) as err:
        decode(data[:-1], "Report.TXT")
    assert "utf-16" in err.value.reason and err.value.line == 2  # the cut is in line 2's end
    assert err.value.filename == "Report.TXT"


def test_utf16_with_a_lone_surrogate_is_a_parse_error() -> None:
    data = codecs.BOM_UTF16_BE + "ok\n".encode("utf-16-be") + b"\xd8\x00\x00A"
    with pytest.raises(ParseError) as err:
        decode(data)
    assert err.value.line == 2


@given(st.text(min_size=2, max_size=40), st.integers(min_value=1, max_value=3))
def test_any_cut_utf16_file_raises_only_parse_error(text: str, cut: int) -> None:
    data = (codecs.BOM_UTF16_LE + text.encode("utf-16-le", errors="surrogatepass"))[:-cut]
    if len(data) % 2:
        with pytest.raises(ParseError):
            decode(data)
    else:
        try:
            decoded, _ = decode(data)
        except ParseError:
            return  # cut inside a surrogate pair
        assert text.startswith(decoded)


def test_utf8_with_c1_controls_is_read_as_cp1252() -> None:
    # Written by a cp1252 PC as Â“AÂ”; the bytes happen to be valid UTF-8 too.
    data = b"Note,\xc2\x93A\xc2\x94\n"  # UTF-8 for U+0093 / U+0094, i.e. C1 controls
    text, encoding = decode(data)
    assert encoding == "cp1252" and text == "Note,\u00c2\u201cA\u00c2\u201d\n"


def test_plain_utf8_stays_utf8() -> None:
    text, encoding = decode("Probe Müller, 5 µL, 25 °C\n".encode())
    assert (text, encoding) == ("Probe Müller, 5 µL, 25 °C\n", "utf-8")


def test_western_cp1252_is_read_as_cp1252() -> None:
    line = "Probe Müller – 5 µL at 25 °C, ±0.5%, l’eau, “Std”\r\n"
    assert decode(line.encode("cp1252")) == (line, "cp1252")


@pytest.mark.parametrize(("text", "codec"), [
    ("サンプル名\t標準 1\r\n", "shift_jis"),
    ("樣品名稱\t標準品\r\n", "big5"),
    ("Próbka\tGłowacki, żółw\r\n", "cp1250"),
])
def test_undeclared_foreign_code_page_is_rejected_with_the_fix(text: str, codec: str) -> None:
    data = text.encode(codec)
    with pytest.raises(ParseError) as err:
        decode(data, "export.txt")
    assert "encodings" in err.value.reason and err.value.line == 1
    # Declared by the file or configured for its name, the same bytes read exactly.
    assert decode(data, declared=codec) == (text, codec)
    options = ParserOptions(encodings=(("*.csv", "cp1252"), ("*.TXT", codec)))
    assert decode(data, configured=options.encoding_for("export.txt")) == (text, codec)
    other = ParserOptions(encodings=(("*.txt", codec),))
    with pytest.raises(ParseError):
        decode(data, configured=other.encoding_for("other.csv"))


def test_bytes_invalid_in_the_configured_code_page_are_rejected() -> None:
    options = ParserOptions(encodings=(("*", "shift_jis"),))
    with pytest.raises(ParseError) as err:
        decode(b"ok\n\x81\xff\n", configured=options.encoding_for("a.txt"))
    assert "shift_jis" in err.value.reason and err.value.line == 2


@pytest.mark.parametrize("cell", ["١٢٣", "１２", "1_000", "²", "1e５", "12\u0663"])
def test_parse_number_refuses_non_ascii_digits(cell: str) -> None:
    with pytest.raises(ParseError):
        parse_number(cell)


@pytest.mark.parametrize(("cell", "value"), [(" 12 ", 12.0), ("+1.5e-3", 0.0015), ('"7"', 7.0)])
def test_parse_number_reads_ascii_numbers(cell: str, value: float) -> None:
    assert parse_number(cell) == value


@pytest.mark.parametrize(("text", "codec"), [
    ("サンプル名\t標準 1\r\n", "shift_jis"),
    ("樣品名稱\t標準品\r\n", "big5"),
    ("Próbka\tGłowacki, żółw\r\n", "cp1250"),
])
def test_default_code_page_reads_undeclared_exports(text: str, codec: str) -> None:
    """The same bytes that are rejected above read exactly once the default code page (the
    ``default_encoding`` setting; else this machine's) is theirs: no per-file configuration."""
    data = text.encode(codec)
    assert decode(data, "export.txt", default=codec) == (text, codec)
    # UTF-8 still wins over the default when the bytes are UTF-8.
    assert decode(text.encode("utf-8"), default=codec) == (text, "utf-8")


def test_default_code_page_is_the_machines(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a Taiwanese Windows PC (ANSI code page 950) a Big5 export needs no setting."""
    from worker.parsers import text as text_module
    data = "樣品名稱\t標準品\r\n".encode("big5")
    monkeypatch.setattr(text_module.locale, "getencoding", lambda: "cp950", raising=False)
    monkeypatch.setattr(text_module.locale, "getpreferredencoding", lambda _=True: "cp950")
    text_module.machine_code_page.cache_clear()
    try:
        assert decode(data)[1] == "cp950"
    finally:
        monkeypatch.undo()
        text_module.machine_code_page.cache_clear()
    with pytest.raises(ParseError, match="encodings"):
        decode(data)  # a UTF-8 machine falls back to cp1252, which refuses these bytes


def test_bytes_invalid_in_the_default_code_page_are_rejected_with_the_fix() -> None:
    with pytest.raises(ParseError) as err:
        decode(b"ok\n\x81\xff\n", "a.txt", default="shift_jis")
    assert "shift_jis" in err.value.reason and "encodings" in err.value.reason
    assert err.value.line == 2


def test_default_encoding_setting_reaches_the_parsers() -> None:
    from worker.consume.dfolder import options
    from worker.parsers import shimadzu
    from worker.settings import Settings
    export = ("[Header]\r\nApplication Name\tLabSolutions\r\n\r\n[Sample Information]\r\n"
              "Sample Name\tPróbka żółw\r\n\r\n[Peak Table(Detector A)]\r\n# of Peaks\t0\r\n")
    data = export.encode("cp1250")
    with pytest.raises(ParseError, match="encodings"):
        shimadzu.parse(data, "x.txt", options(Settings()))
    parsed = shimadzu.parse(data, "x.txt", options(Settings(default_encoding="cp1250")))
    assert parsed.sample_name == "Próbka żółw" and parsed.encoding == "cp1250"
