"""Decoding and number reading shared by the text-based parsers.

Exports are written in whatever the instrument PC uses: UTF-8 with or without a BOM, UTF-16
with a BOM, or a Windows code page. We decide per file and never replace undecodable bytes: a
file we cannot decode exactly is rejected, never mis-read.
"""

from __future__ import annotations

import codecs
import math
import re

from worker.parsers.base import ParseError

# Tried in order after the BOM checks; cp1252 last because it accepts almost any byte.
FALLBACK_ENCODINGS = ("utf-8", "cp1252")

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def detect_encoding(data: bytes, declared: str | None = None) -> str:
    """The encoding to read ``data`` with: BOM, then a declared code page, then UTF-8, cp1252."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    candidates = ((declared,) if declared else ()) + FALLBACK_ENCODINGS
    for name in candidates:
        try:
            data.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
        if name == "cp1252" and _looks_like_utf16_without_bom(data):
            break
        return name
    raise ParseError("cannot decode the file as UTF-8, UTF-16 (with BOM) or cp1252", line=None)


def _looks_like_utf16_without_bom(data: bytes) -> bool:
    sample = data[:4096]
    return len(sample) >= 4 and sample.count(0) > len(sample) // 4


def decode(data: bytes, filename: str | None = None, declared: str | None = None) -> tuple[str, str]:
    """Decode the whole file; returns (text, encoding). Strips a BOM."""
    if b"\x00" in data[:4096] and not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ParseError("binary content (NUL bytes) where text was expected", filename=filename)
    try:
        encoding = detect_encoding(data, declared)
    except ParseError as exc:
        exc.filename = filename
        raise
    text = data.decode(encoding)
    if encoding.startswith("utf-16") and text.startswith("\ufeff"):
        text = text[1:]
    return text, encoding


def split_lines(text: str) -> list[str]:
    """Lines without their ends, for LF, CRLF and CR-only files alike (index + 1 = line number)."""
    lines = re.split(r"\r\n|\r|\n", text)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$")


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
