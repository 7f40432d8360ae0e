"""Parser registry: every format registers through the ``accu_ingest.parsers`` entry point group.

Detection sniffs the content of the file; every registered parser scores it and the most
confident one wins. A file that no parser claims is rejected with what was seen, never guessed.

Configuration reaches parsers as an argument, never as I/O: ``ParserOptions`` (built from the
settings) carries the code pages configured per file-name glob, which ``text.decode`` applies
during this call, and the ``[tables.*]`` column mappings, passed to the parsers that declare
``configurable = True`` (the generic table parser). The same bytes, name and options always give
the same result.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points

from worker.parsers.base import ParsedFile, ParseError, Parser
from worker.parsers.table import TableMapping
from worker.parsers.text import configured_encoding, decode

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "accu_ingest.parsers"
MIN_CONFIDENCE = 50
_ZIP = b"PK\x03\x04"
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


@dataclass(frozen=True)
class ParserOptions:
    """What the configuration tells parsers: code pages by file-name glob, table mappings."""

    encodings: tuple[tuple[str, str], ...] = ()
    tables: tuple[TableMapping, ...] = ()


NO_OPTIONS = ParserOptions()


@lru_cache(maxsize=1)
def registered() -> dict[str, Parser]:
    """All parsers, by name. Built-in ones come through the same entry points as third parties'."""
    parsers: dict[str, Parser] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            parser = ep.load()
        except Exception:  # one broken plug-in must not stop every other format
            log.exception("parser entry point %r (%s) failed to load; skipped", ep.name, ep.value)
            continue
        parsers[parser.name] = parser
    if not parsers:
        raise RuntimeError(
            f"no parsers registered under the {ENTRY_POINT_GROUP!r} entry point group; "
            "is accu-ingest installed (pip install -e .)?")
    return parsers


def detect(data: bytes, filename: str, options: ParserOptions = NO_OPTIONS) -> Parser:
    """The parser most confident that ``data`` is its format, or ParseError saying what was seen."""
    with configured_encoding(filename, options.encodings):
        scores = sorted(((_sniff(p, data, filename, options), name, p)
                         for name, p in registered().items()), key=lambda s: (-s[0], s[1]))
    best_score, _, best = scores[0]
    if best_score < MIN_CONFIDENCE:
        broken = _broken_text(data, filename)
        if broken is not None:
            raise broken
        raise ParseError(f"unrecognised format: {describe(data)}; no parser recognised it "
                         f"(known formats: {', '.join(sorted(registered()))})", filename=filename)
    return best


def parse(data: bytes, filename: str, options: ParserOptions = NO_OPTIONS) -> ParsedFile:
    """Detect the format and parse; the only exception that escapes is ParseError."""
    parser = detect(data, filename, options)
    try:
        with configured_encoding(filename, options.encodings):
            if getattr(parser, "configurable", False):
                return parser.parse(data, filename, options.tables)  # type: ignore[call-arg]
            return parser.parse(data, filename)
    except ParseError as exc:
        exc.filename = exc.filename or filename
        raise
    except (ValueError, TypeError, IndexError, KeyError, UnicodeError) as exc:
        # A parser bug or a pydantic validation failure must still reject the file clearly.
        raise ParseError(f"{parser.name}: {exc}", filename=filename) from exc


def _broken_text(data: bytes, filename: str) -> ParseError | None:
    """The decoding error of a file whose byte-order mark says it is text but whose bytes then
    break (a UTF-16 export cut to an odd length, a broken surrogate), else None.

    Sniffers only look at text that decodes, so such a file would be "unrecognised"; the lab
    needs the line where it breaks instead (``text.decode``).
    """
    if not data.startswith(_BOMS):
        return None
    try:
        decode(data, filename)
    except ParseError as exc:
        return exc
    return None


def _sniff(parser: Parser, data: bytes, filename: str, options: ParserOptions) -> int:
    if getattr(parser, "configurable", False):
        tables: Sequence[TableMapping] = options.tables
        return parser.sniff(data, filename, tables)  # type: ignore[call-arg]
    return parser.sniff(data, filename)


def describe(data: bytes) -> str:
    """A short, human-readable description of what the first bytes look like."""
    if not data:
        return "the file is empty"
    if data.startswith(_ZIP) and b"xl/" in data[:65536]:
        return ("an Excel workbook (.xlsx) — read only through a [tables.NAME] column mapping "
                "in the configuration whose `files` globs match its name, and none does")
    if b"\x00" in data[:4096] and data[:2] not in (b"\xff\xfe", b"\xfe\xff"):
        return f"binary content ({len(data)} bytes, starts {data[:8].hex()})"
    first = data[:200].splitlines()[0] if data.strip() else b""
    return f"text starting {first[:80].decode('utf-8', 'backslashreplace')!r}"


__all__ = ["NO_OPTIONS", "ParseError", "ParsedFile", "Parser", "ParserOptions", "detect", "parse",
           "registered"]
