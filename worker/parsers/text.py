"""Decoding and number reading shared by the text-based parsers.

Exports are written in whatever the instrument PC uses: UTF-8 with or without a BOM, UTF-16
with a BOM, or a Windows code page. We decide per file and never replace undecodable bytes: a
file we cannot decode exactly is rejected, never mis-read. The order of the decision:

1. a BOM (UTF-8, UTF-16 LE/BE) — the whole file must then decode, an odd or cut UTF-16 byte count
   is a ``ParseError`` with the line where decoding stopped;
2. a code page the file declares (``declared``), else one configured for the file name
   (``encodings`` setting: the parser passes ``options.encoding_for(filename)`` as ``configured``);
3. UTF-8, unless the text then holds C1 control characters (U+0080–U+009F): those are never
   typed, while cp1252 puts € “ ” – … on exactly those bytes, so such a file is cp1252;
4. the default code page: the ``default_encoding`` setting, else the code page of the machine
   the worker runs on (on Windows the ANSI code page, ``locale.getpreferredencoding``: Big5 in
   Taiwan, cp1250 in Central Europe, Shift-JIS in Japan), so a lab PC reads its own exports with
   no configuration. A machine whose code page is UTF-8 (Linux, macOS) falls back to cp1252,
   what instrument PCs in Western locales write. The bytes must decode exactly in it, else the
   file is rejected with the fix (the ``encodings`` setting);
5. for cp1252: unless the bytes look like another code page — the double-byte Big5 / Shift-JIS
   or the Central European cp1250 that Shimadzu PCs write in their locale. cp1252 accepts almost
   any byte, so reading those as cp1252 would silently give garbage; the file is rejected instead
   with the reason and the fix (declare the code page with the ``encodings`` setting).
"""

from __future__ import annotations

import codecs
import locale
import math
import re
import unicodedata
from array import array
from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import repeat

from worker.parsers.base import ParseError

# Tried in order after the BOM checks; cp1252 last because it accepts almost any byte.
FALLBACK_ENCODINGS = ("utf-8", "cp1252")

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_BOM_BYTES = tuple(bom for bom, _ in _BOMS)
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# Every BOM opens with a byte from here up (EF, FF, FE).
_LOWEST_BOM_BYTE = min(bom[:1] for bom in _BOM_BYTES)
# In cp1252, bytes that Shift-JIS uses as lead bytes and Western text never shows (ƒ ˆ ‹ › ˜),
# and Latin-1 signs that Big5 pairs produce (¤ ¦ ¨ ¯ ´ ¸) but lab exports do not print.
_FOREIGN_SIGNS = frozenset("ƒˆ‹›˜¤¦¨¯´¸")
# Latin-1 signs that are letters in cp1250 (³ = ł, ¹ = ą, ¿ = ż, ¥ = Ą, ¼ = Ľ, ¾ = ľ …): a sign
# of this range between two letters, or touching another non-ASCII character, is a mis-read word.
_SIGN_RANGE = frozenset(chr(c) for c in range(0xA1, 0xC0))

@lru_cache(maxsize=1)
def machine_code_page() -> str:
    """The code page this machine's programs write text in (on Windows the ANSI code page);
    cp1252 where that is UTF-8 or ASCII, which no Windows instrument PC writes undeclared."""
    # locale.getencoding (3.11+) is the ANSI code page even in UTF-8 mode, where
    # getpreferredencoding says UTF-8.
    getencoding = getattr(locale, "getencoding", None)
    try:
        name = codecs.lookup(getencoding() if getencoding else
                             locale.getpreferredencoding(False)).name
    except LookupError:
        return "cp1252"
    return "cp1252" if name in ("utf-8", "ascii") else name


def _decide(data: bytes, declared: str | None, configured: str | None,
            default: str | None = None) -> tuple[str, str | None]:
    """(encoding, decoded text, or None where only the BOM was looked at): each decoding is
    done once, which matters on 50 MB traces."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name, None
    chosen = declared or configured
    if chosen:
        try:
            return chosen, data.decode(chosen)
        except LookupError:
            raise ParseError(f"unknown code page {chosen!r}") from None
        except UnicodeDecodeError as exc:
            raise ParseError(f"the bytes are not valid {chosen} (the declared or configured code "
                             f"page): {exc.reason} at byte {exc.start}",
                             line=_line_at(data, exc.start)) from None
    if data.isascii():
        return "utf-8", data.decode("ascii")
    text = _utf8(data)
    if text is not None:
        return "utf-8", text
    if _looks_like_utf16_without_bom(data):
        raise ParseError("the file looks like UTF-16 without a byte-order mark (every other "
                         "byte is NUL); it cannot be decoded safely")
    fallback = default or machine_code_page()
    try:
        fallback = codecs.lookup(fallback).name
    except LookupError:
        raise ParseError(f"unknown code page {fallback!r} (default_encoding)") from None
    if fallback != "cp1252":
        try:
            return fallback, data.decode(fallback)
        except UnicodeDecodeError as exc:
            raise ParseError(
                f"cannot decode the file as UTF-8, UTF-16 (with BOM) or {fallback} (the default "
                f"code page) (byte 0x{data[exc.start]:02X} at offset {exc.start}); if it is "
                "written in another code page, set it with the `encodings` setting",
                line=_line_at(data, exc.start)) from None
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise ParseError(
            f"cannot decode the file as UTF-8, UTF-16 (with BOM) or cp1252 (byte "
            f"0x{data[exc.start]:02X} at offset {exc.start} has no cp1252 character); if it is "
            "written in another code page (cp1250, Big5, Shift-JIS …), set it with the "
            "`encodings` setting", line=_line_at(data, exc.start)) from None
    if data.translate(None, _NOT_SUSPECT):  # else no character the check below could refuse
        _refuse_foreign_code_page(text)
    return "cp1252", text


# The bytes of the last file found free of C1 controls, up to its last C2 lead byte's pair: a
# sequence's files repeat their method preamble, where their non-ASCII signs (°C, µL) are, so
# only what follows it is looked through (bytes never change; one read of a replaced value).
_clean_head = b""


def _utf8_has_c1(data: bytes) -> bool:
    """Whether valid UTF-8 ``data`` encodes a C1 control (U+0080–U+009F).

    In UTF-8 those are exactly the byte pairs C2 80 … C2 9F, and C2 is never a continuation
    byte, so the bytes answer without a regex over the decoded text (which cost more than the
    decoding itself on every non-ASCII file).
    """
    global _clean_head
    head = _clean_head
    start = len(head) if head and data.startswith(head) else 0
    at = data.find(b"\xc2", start)
    last = -1
    while at >= 0:
        if 0x80 <= data[at + 1] <= 0x9F:  # valid UTF-8: a C2 lead byte is never the last byte
            return True
        last = at
        at = data.find(b"\xc2", at + 2)
    if 0 <= last < _REMEMBERED_BYTES:  # a small file's head, never megabytes of a trace
        _clean_head = data[:last + 2]
    return False


def _line_at(data: bytes, offset: int) -> int:
    return data[:offset].count(b"\n") + 1


def _looks_like_utf16_without_bom(data: bytes) -> bool:
    sample = data[:4096]
    return len(sample) >= 4 and sample.count(0) > len(sample) // 4


_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# Every byte but the cp1252 encodings of the characters ``_refuse_foreign_code_page`` may
# refuse (a letter such as µ never is): a file without any of them needs no scan of its
# characters, which one pass in C tells.
_NOT_SUSPECT = bytes(sorted(set(range(256)) - {
    char.encode("cp1252")[0]
    for char in _FOREIGN_SIGNS | {sign for sign in _SIGN_RANGE if not sign.isalpha()}}))


def _refuse_foreign_code_page(text: str) -> None:
    """ParseError when cp1252-decoded ``text`` shows the marks of another code page."""
    for match in _NON_ASCII.finditer(text):
        i, char = match.start(), match.group()
        before = text[i - 1] if i else " "
        after = text[i + 1] if i + 1 < len(text) else " "
        foreign = char in _FOREIGN_SIGNS or (char in _SIGN_RANGE and not char.isalpha() and (
            (before.isalpha() and after.isalpha())
            or not before.isascii() or not after.isascii()))
        if foreign:
            number = len(split_lines(text[:i] + "x"))
            start = max(0, i - 12)
            raise ParseError(
                f"the text is not UTF-8, and read as cp1252 it shows "
                f"{unicodedata.name(char, repr(char)).lower()} ({char!r}) in "
                f"{text[start:i + 12]!r}: it looks like another code page (cp1250, Big5, "
                "Shift-JIS …); set the file's code page with the `encodings` setting",
                line=number)


# Up to this size the last decoding is remembered, by the identity of the bytes object: the
# registry's sniffers and then the parser decode the same head or small file one after another,
# and decoding is a pure function of the bytes (bytes objects never change).
_REMEMBERED_BYTES = 65536
_last: tuple[bytes, tuple[str | None, ...], tuple[str, str]] | None = None


def decode(data: bytes, filename: str | None = None, declared: str | None = None, *,
           configured: str | None = None, default: str | None = None) -> tuple[str, str]:
    """Decode the whole file exactly; returns (text, encoding). Strips a BOM.

    ``configured`` is the code page the settings give for this file name
    (``ParserOptions.encoding_for``), used when the file declares none; ``default`` the one to
    try after UTF-8 (``ParserOptions.default_encoding``; None: this machine's).

    Nothing but ``ParseError`` leaves: a UTF-16 file cut to an odd number of bytes, or corrupted
    after its BOM, is rejected with the line where the bytes stop making sense.
    """
    global _last
    if type(data) is not bytes or len(data) > _REMEMBERED_BYTES:
        return _decode(data, filename, declared, configured, default)
    key = (declared, configured, default, machine_code_page())
    last = _last  # one read: another thread may replace it meanwhile
    if last is not None and last[0] is data and last[1] == key:
        return last[2]
    decoded = _decode(data, filename, declared, configured, default)
    _last = (data, key, decoded)
    return decoded


def _utf8(data: bytes) -> str | None:
    """``data`` as UTF-8 text, or None when it is not UTF-8 or holds C1 control characters
    (the mark of cp1252 text that happens to decode)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if _utf8_has_c1(data) else text


def _decode(data: bytes, filename: str | None, declared: str | None, configured: str | None,
            default: str | None) -> tuple[str, str]:
    if data.find(b"\x00", 0, 4096) >= 0 and not data.startswith(_UTF16_BOMS):
        raise ParseError("binary content (NUL bytes) where text was expected", filename=filename)
    if not (declared or configured) and type(data) is bytes and len(data) <= _REMEMBERED_BYTES \
            and not data.startswith(_BOM_BYTES):
        # The most common file, read in the fewest steps: what ``_decide`` reads as UTF-8 (a
        # small file: should it be cp1252, its failed UTF-8 decoding is done twice).
        text = _utf8(data)
        if text is not None:
            return text, "utf-8"
    try:
        encoding, decoded = _decide(data, declared, configured, default)
        text = data.decode(encoding) if decoded is None else decoded
    except ParseError as exc:
        exc.filename = filename
        raise
    except UnicodeDecodeError as exc:
        # Only a BOM'd file gets here; everything before the bad byte decodes, so count lines.
        # (``ignore`` only in counting the lines before it: the file itself is rejected.)
        good = data[: exc.start].decode(exc.encoding, errors="ignore")
        raise ParseError(f"cannot decode as {exc.encoding}: {exc.reason} at byte {exc.start}"
                         f" (of {len(data)}; a UTF-16 file cut short or corrupted?)",
                         line=good.count("\n") + 1, filename=filename) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text, encoding


def split_lines(text: str) -> list[str]:
    """Lines without their ends, for LF, CRLF and CR-only files alike (index + 1 = line number)."""
    # Same result as re.split(r"\r\n|\r|\n", text), several times faster: every CR LF pair is
    # one break, then every CR left is a break of its own.
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


# --- Sniffing without decoding ----------------------------------------------------------------
# Code pages that turn every ASCII byte into that character and every other byte into non-ASCII
# characters (or an error), the fallbacks of ``_decide`` included: ASCII text is then the same
# in bytes and text.
_ASCII_TRANSPARENT = frozenset(
    ["ascii", "utf-8", "utf-8-sig", *(f"cp{n}" for n in range(1250, 1259)),
     *(f"iso8859-{n}" for n in range(1, 17))])


# Code page name as given -> whether it is ASCII-transparent: asked by several sniffers on every
# file, so a dict lookup rather than a codec lookup (or an lru_cache call) each time. Names come
# from the settings and the machine, a handful; emptied should anything pass many.
_transparent: dict[str, bool] = {}


def _ascii_transparent(name: str) -> bool:
    known = _transparent.get(name)
    if known is None:
        try:
            known = codecs.lookup(name).name in _ASCII_TRANSPARENT
        except LookupError:
            known = False  # decode will refuse it; the sniffer finds that out the slow way
        if len(_transparent) >= 64:
            _transparent.clear()
        _transparent[name] = known
    return known


def may_contain(data: bytes, needles: tuple[str, ...], configured: str | None = None,
                default: str | None = None) -> bool:
    """False only when the text ``decode(data, configured=configured)`` gives cannot hold any of
    the ASCII ``needles`` (True may be a false alarm): a sniffer can let a file of megabytes go
    without decoding it.
    """
    if data[:1] < _LOWEST_BOM_BYTE or not data.startswith(_UTF16_BOMS):
        if not _ascii_transparent(configured or default or machine_code_page()):
            return True  # a multi-byte code page: only decoding can tell
        codec = "ascii"
    else:
        codec = "utf-16-le" if data.startswith(codecs.BOM_UTF16_LE) else "utf-16-be"
    # ``find``, not ``in``: ``in`` on bytes first tries the needle as an int, and formats the
    # error it then clears. A loop, not ``any``: no generator made on every call.
    for needle in _encoded(needles, codec):  # noqa: SIM110
        if data.find(needle) >= 0:
            return True
    return False


# (needles, codec) -> the needles encoded: each sniffer asks with its own constant tuple.
_needles: dict[tuple[tuple[str, ...], str], tuple[bytes, ...]] = {}


def _encoded(needles: tuple[str, ...], codec: str) -> tuple[bytes, ...]:
    key = (needles, codec)
    found = _needles.get(key)
    if found is None:
        found = tuple(needle.encode(codec) for needle in needles)
        if len(_needles) >= 64:
            _needles.clear()
        _needles[key] = found
    return found


def ascii_bytes(data: bytes, configured: str | None = None,
                default: str | None = None) -> bytes | None:
    """``data`` without its UTF-8 BOM when the text ``decode(data, configured=configured,
    default=default)`` gives (if it decodes) has every ASCII character from the same ASCII byte
    and every other from non-ASCII bytes; else None (UTF-16, a multi-byte code page).

    ASCII landmarks, line breaks and line starts are then where the bytes have them: a sniffer
    can rule a file out before anything is decoded.
    """
    if not _ascii_transparent(configured or default or machine_code_page()):
        return None  # a configured or default multi-byte code page: only decoding can tell
    if data[:1] < _LOWEST_BOM_BYTE:
        return data  # the common file: no BOM, which one comparison tells
    if data.startswith(_UTF16_BOMS):
        return None
    if data.startswith(codecs.BOM_UTF8):
        data = data[3:]  # and as ``decode`` drops a U+FEFF that follows the BOM, so is it here:
        return data[3:] if data.startswith(codecs.BOM_UTF8) else data
    return data


# ASCII digits only: ``\d`` and ``float`` would also take Arabic-Indic or full-width digits.
_NUMBER = re.compile(r"^[+-]?([0-9]+([.,][0-9]*)?|[.,][0-9]+)([eE][+-]?[0-9]+)?$")


def parse_number(cell: str, *, decimal_comma: bool = False, what: str = "number",
                 line: int | None = None, filename: str | None = None) -> float:
    """Read one numeric cell exactly; quoted cells and scientific notation are accepted.

    A comma is a decimal separator only when ``decimal_comma`` is set, so ``1,234`` is never
    silently read as 1.234 in a comma-decimal file or as 1234 in a dot-decimal one.
    """
    raw = cell.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        raw = raw[1:-1].strip()
    if not raw:
        raise ParseError(f"{what} is empty", line=line, filename=filename)
    if "," in raw and not decimal_comma:
        raise ParseError(f"{what} {cell.strip()!r} is not a number", line=line, filename=filename)
    if decimal_comma:
        if "." in raw:
            raise ParseError(f"{what} {cell.strip()!r} mixes decimal comma and point", line=line,
                             filename=filename)
        raw = raw.replace(",", ".")
    if not _NUMBER.match(raw):
        raise ParseError(f"{what} {cell.strip()!r} is not a number", line=line, filename=filename)
    value = float(raw)
    if not math.isfinite(value):
        raise ParseError(f"{what} {cell.strip()!r} is not finite", line=line, filename=filename)
    return value


def require_line_end(text: str, line: int | None, what: str = "last row",
                     filename: str | None = None) -> None:
    """ParseError unless ``text`` ends with a line end: exports end their last row with one, so
    a file that stops inside a row is cut off or still being written, whatever its rows say."""
    if not text.endswith(("\n", "\r")):
        raise ParseError(f"the {what} has no line end: the file is cut off or still being "
                         "written", line=line, filename=filename)


def sample_kind(text: str | None, vocabulary: Sequence[tuple[str, str]]) -> str | None:
    """The ``ParsedFile.sample_kind`` (standard | sample | blank) of a vendor's sample type.

    ``vocabulary`` is the vendor's words, in the order they win when a type holds several
    (``("unknown", "sample"), ("standard", "standard") …``); a type with none of them is None,
    never guessed.
    """
    lowered = (text or "").lower()
    return next((kind for word, kind in vocabulary if word in lowered), None)


# --- Large numeric tables (chromatogram traces) -----------------------------------------------

# Searched one at a time: eight substring searches of a 10 MB trace take 1.5 ms, one character
# class regex over it 75 ms.
_ODD_BREAKS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def lines_of(text: str) -> list[str]:
    """``text.split_lines`` semantics (CR, LF, CRLF only), fast when no exotic breaks occur.

    ``str.splitlines`` is several times faster than a regex split on large traces but also
    breaks on form feeds, U+2028 …, which would shift line numbers; it is used only when none
    of those characters are present.
    """
    if any(c in text for c in _ODD_BREAKS):
        return split_lines(text)
    return text.splitlines()


_NUMBER_BYTES = b"0123456789+-eE"


def read_numeric_rows(lines: Sequence[str], first: int, stop: int, columns: Sequence[str], *,
                      keep: Sequence[int], delimiter: str = "\t", decimal_comma: bool = False,
                      not_available: Iterable[int] = ()) -> list[array]:
    """Read ``lines[first - 1 : stop - 1]`` (1-based ``first``) as rows of numbers, exactly.

    Every cell of every row is checked; the columns in ``keep`` are returned as ``array('d')``.
    Columns in ``not_available`` may also hold Chromeleon's ``n.a.``. A row may end with one
    extra, empty delimiter. Large traces go through a vectorised path (joins, splits and
    ``float`` over whole columns, several times faster than a per-row loop) that only accepts
    what the exact per-row reader accepts; anything it is unsure of goes to the per-row reader,
    which gives the failing line and reason.
    """
    na_columns = frozenset(not_available)
    result = [array("d") for _ in keep]
    # In chunks, so the temporary strings of a 50 MB trace never all exist at once: memory
    # stays a small multiple of the file, whatever its size.
    for start in range(first - 1, stop - 1, ROWS_PER_CHUNK):
        segment = list(lines[start:min(start + ROWS_PER_CHUNK, stop - 1)])
        part = _fast_rows(segment, len(columns), keep, delimiter, decimal_comma, na_columns)
        if part is None:
            part = _exact_rows(segment, start + 1, columns, keep, delimiter, decimal_comma,
                               na_columns)
        for out, column in zip(result, part, strict=True):
            out.extend(column)
    return result


ROWS_PER_CHUNK = 65536


def _fast_rows(segment: list[str], ncols: int, keep: Sequence[int], delimiter: str,
               decimal_comma: bool, na_columns: frozenset[int]) -> list[array] | None:
    if not segment:
        return [array("d") for _ in keep]
    counts = set(map(str.count, segment, repeat(delimiter)))
    if counts == {ncols - 1}:
        per = ncols
    elif counts == {ncols}:
        per = ncols + 1
    else:
        return None
    flat = delimiter.join(segment)
    check = flat.replace("n.a.", "") if na_columns else flat
    try:
        leftover = check.encode("ascii").translate(
            None, _NUMBER_BYTES + delimiter.encode("ascii") + (b"," if decimal_comma else b"."))
    except UnicodeEncodeError:
        return None
    if leftover:
        return None
    if decimal_comma:
        flat = flat.replace(",", ".")
    cells = flat.split(delimiter)
    if per > ncols and any(cells[ncols::per]):
        return None
    columns: dict[int, array] = {}
    for column in range(ncols):
        strings = cells[column::per]
        if column in na_columns:
            strings = [s for s in strings if s != "n.a."]
        if column not in keep:
            # Only checked, not kept: each distinct cell once (a step column repeats one value).
            strings = list(set(strings))
        try:
            numbers = array("d", map(float, strings))
        except ValueError:
            return None
        if not math.isfinite(sum(numbers)):
            return None
        columns[column] = numbers
    return [columns[k] for k in keep]


def _exact_rows(segment: list[str], first: int, columns: Sequence[str], keep: Sequence[int],
                delimiter: str, decimal_comma: bool, na_columns: frozenset[int]) -> list[array]:
    result = [array("d") for _ in keep]
    ncols = len(columns)
    for number, row in enumerate(segment, start=first):
        cells = row.split(delimiter)
        if len(cells) == ncols + 1 and not cells[-1].strip():
            cells.pop()
        if len(cells) != ncols:
            raise ParseError(f"expected {ncols} columns ({', '.join(columns)}), found "
                             f"{len(cells)}: {row[:60]!r}", line=number)
        values = [None if (c in na_columns and cell.strip() == "n.a.")
                  else parse_number(cell, decimal_comma=decimal_comma, what=columns[c],
                                    line=number)
                  for c, cell in enumerate(cells)]
        for out, column in zip(result, keep, strict=True):
            value = values[column]
            if value is None:
                raise ParseError(f"{columns[column]} is n.a.", line=number)
            out.append(value)
    return result
