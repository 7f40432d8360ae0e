"""Parser registry: every format registers through the ``accu_ingest.parsers`` entry point group.

Detection sniffs the content of the file; every registered parser scores it on the confidence
scale of ``base`` and the most confident one wins. A file that no parser claims with at least
``MIN_CONFIDENCE`` is rejected with what was seen, never guessed.

Every parser gets the same three arguments, the configuration included: ``ParserOptions`` (built
from the settings: code pages by file-name glob, the ``[tables.*]`` column mappings) is passed
to each ``sniff`` and ``parse``, never read from global state. The same bytes, name and options
always give the same result. README.md in this folder is the contract for third parties.
"""

from __future__ import annotations

import codecs
import inspect
import logging
import mmap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any, TypeVar

from worker.parsers.base import (
    CERTAIN,
    MIN_CONFIDENCE,
    ParsedFile,
    ParseError,
    Parser,
    SetParser,
    too_many,
)
from worker.parsers.options import NO_OPTIONS, ParserOptions
from worker.parsers.text import decode

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "accu_ingest.parsers"
# What ``sniff`` is given: the first 64 KiB, cut after their last line break (README.md).
SNIFF_BYTES = 65536
# A stored file handed over as an mmap is read whole (copied into memory) up to this size by
# parsers that do not read slices (``reads_slices``); bigger, only those read it.
WHOLE_BYTES = 64 * 1024 * 1024
_ZIP = b"PK\x03\x04"
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
T = TypeVar("T")


@lru_cache(maxsize=1)
def registered() -> dict[str, Parser]:
    """All parsers, by name. Built-in ones come through the same entry points as third parties'."""
    parsers: dict[str, Parser] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            parser = adapt(ep.load())
        except Exception:  # one broken plug-in must not stop every other format
            log.exception("parser entry point %r (%s) failed to load; skipped", ep.name, ep.value)
            continue
        parsers[parser.name] = parser
    if not parsers:
        raise RuntimeError(
            f"no parsers registered under the {ENTRY_POINT_GROUP!r} entry point group; "
            "is accu-ingest installed (pip install -e .)?")
    return parsers


def extensions() -> tuple[str, ...]:
    """Every file-name extension a registered parser declares (lower case, with the dot)."""
    return tuple(sorted({ext.lower() for p in registered().values() for ext in p.extensions}))


@dataclass(frozen=True)
class _TwoArgument:
    """A parser written for the old contract, ``sniff(data, filename)`` / ``parse(data,
    filename)``: still loaded, without options (no configured code page reaches it)."""

    inner: Any

    @property
    def name(self) -> str:
        return str(self.inner.name)

    @property
    def version(self) -> str:
        return str(self.inner.version)

    @property
    def display_name(self) -> str:
        return str(getattr(self.inner, "display_name", self.inner.name))

    @property
    def extensions(self) -> tuple[str, ...]:
        return tuple(getattr(self.inner, "extensions", ()))

    def sniff(self, data: bytes, filename: str, options: ParserOptions) -> int:
        return int(self.inner.sniff(data, filename))

    def parse(self, data: bytes, filename: str, options: ParserOptions) -> ParsedFile:
        result: ParsedFile = self.inner.parse(data, filename)
        return result


def adapt(parser: Any) -> Parser:
    """``parser`` as the registry calls it; a two-argument parser is wrapped (and logged once),
    anything else missing from the contract refuses to load."""
    missing = [a for a in ("name", "version", "sniff", "parse") if not hasattr(parser, a)]
    if missing:
        raise TypeError(f"{parser!r} is not a parser: it lacks {', '.join(missing)}")
    if _positional(parser.sniff) == 2 and _positional(parser.parse) == 2:
        log.warning("parser %r has the old two-argument sniff/parse; loaded without options "
                    "(configured code pages and table mappings do not reach it)", parser.name)
        return _TwoArgument(parser)
    for attribute, default in (("display_name", parser.name), ("extensions", ())):
        if not hasattr(parser, attribute):
            raise TypeError(f"parser {parser.name!r} lacks {attribute!r} (e.g. {default!r})")
    return parser  # type: ignore[no-any-return]


def _positional(function: Callable[..., object]) -> int | None:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters)


def head(data: bytes) -> bytes:
    """What sniffers see of ``data``: all of it up to SNIFF_BYTES, else its first SNIFF_BYTES
    cut just after their last line break, so a sniffer never sees half a line or half a
    character (a UTF-16 line break is two bytes at an even offset).

    Detection then costs the same for a 1 KB report and a 500 MB trace, and reads only the
    first pages of a file handed over as an mmap.
    """
    if len(data) <= SNIFF_BYTES:
        return bytes(data)
    first = bytes(data[:SNIFF_BYTES])
    if first.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        newline = b"\n\x00" if first.startswith(codecs.BOM_UTF16_LE) else b"\x00\n"
        at = first.rfind(newline)
        while at > 0 and at % 2:
            at = first.rfind(newline, 0, at)
        return first[:at + 2] if at > 0 else first[:SNIFF_BYTES - SNIFF_BYTES % 2]
    at = first.rfind(b"\n")
    return first[:at + 1] if at >= 0 else first


def detect(data: bytes, filename: str, options: ParserOptions = NO_OPTIONS) -> Parser:
    """The parser most confident that ``data`` is its format, or ParseError saying what was seen.

    Every sniffer gets only ``head(data)``. Scores are capped at CERTAIN, the top of the scale:
    the sniffers are asked in name order, so once one says CERTAIN no later one can beat it (a
    tie goes to the first name) and the rest are not asked."""
    first = data if type(data) is bytes and len(data) <= SNIFF_BYTES else head(data)
    best: Parser | None = None
    best_score = 0
    for parser in _in_name_order(registered()):
        score = parser.sniff(first, filename, options)
        if score >= CERTAIN:  # no score can beat it, and an earlier name has none as high
            best, best_score = parser, CERTAIN
            break
        if best is None or score > best_score:
            best, best_score = parser, score
    assert best is not None  # registered() is never empty
    if best_score < MIN_CONFIDENCE:
        broken = _broken_text(data, filename, options)
        if broken is not None:
            raise broken
        raise ParseError(f"unrecognised format: {describe(data)}; no parser recognised it "
                         f"(known formats: {', '.join(sorted(registered()))})", filename=filename)
    return best


_order: tuple[dict[str, Parser], tuple[Parser, ...]] | None = None


def _in_name_order(parsers: dict[str, Parser]) -> tuple[Parser, ...]:
    """The values of ``parsers`` by name, remembered for the last dict (``registered()``'s,
    the same one every time)."""
    global _order
    last = _order  # one read: another thread may replace it meanwhile
    if last is None or last[0] is not parsers:
        last = _order = (parsers, tuple(parsers[name] for name in sorted(parsers)))
    return last[1]


def parse(data: bytes, filename: str, options: ParserOptions = NO_OPTIONS) -> ParsedFile:
    """Detect the format and parse; the only exception that escapes is ParseError.

    ``data`` is bytes, or for a big stored file an mmap of it (README.md: parsers that read a
    file a slice at a time take any bytes-like object)."""
    parser = detect(data, filename, options)
    if not isinstance(data, bytes) and not getattr(parser, "reads_slices", False):
        if len(data) > WHOLE_BYTES:
            raise ParseError(
                f"the file is {len(data) / 1048576:.0f} MiB, and {parser.display_name} is read "
                f"whole: over the {WHOLE_BYTES // 1048576} MiB such a file may have for its "
                "memory to stay bounded (WHOLE_BYTES); no export of that format is this big",
                filename=filename)
        copy = bytes(data)
        if isinstance(data, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
            data.madvise(mmap.MADV_DONTNEED)  # the copy is what is read: the pages go back
        data = copy
    try:  # ``_guarded``, without a closure per file
        parsed = parser.parse(data, filename, options)
    except ParseError as exc:
        exc.filename = exc.filename or filename
        raise
    except (ValueError, TypeError, IndexError, KeyError, UnicodeError) as exc:
        raise _bug(parser, filename, exc) from exc
    return within_limits(parsed, filename, options)


def within_limits(parsed: ParsedFile, filename: str, options: ParserOptions) -> ParsedFile:
    """``parsed``, or ParseError naming the setting when a signal holds more peaks or points
    than the limits allow: every format keeps them, whether or not its parser stops early."""
    for signal in parsed.signals:
        if signal.peaks is not None and len(signal.peaks) > options.max_peaks_per_table:
            raise too_many(f"peaks in the table of {signal.name!r}", options.max_peaks_per_table,
                           "max_peaks_per_table", filename=filename)
        if signal.trace is not None and signal.trace.points > options.max_trace_points:
            raise too_many(f"points in the trace of {signal.name!r}", options.max_trace_points,
                           "max_trace_points", filename=filename)
    return parsed


def parse_set(members: Mapping[str, bytes], options: ParserOptions = NO_OPTIONS) -> ParsedFile:
    """One injection written as several files (keyed by name), read by the registered set
    parser that is most confident about one of them; ParseError as for ``parse``."""
    first = next(iter(members), "")
    set_parsers = {name: p for name, p in registered().items()
                   if callable(getattr(p, "parse_set", None))}
    scores = sorted(((max((p.sniff(head(data), key, options) for key, data in members.items()),
                          default=0), name, p) for name, p in set_parsers.items()),
                    key=lambda s: (-s[0], s[1]))
    if not scores or scores[0][0] < MIN_CONFIDENCE:
        raise ParseError(f"no set parser recognised the files {', '.join(members)}",
                         filename=first)
    parser: SetParser = scores[0][2]  # type: ignore[assignment]
    return within_limits(_guarded(parser, first, lambda: parser.parse_set(members, options)),
                         first, options)


def _guarded(parser: Parser, filename: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except ParseError as exc:
        exc.filename = exc.filename or filename
        raise
    except (ValueError, TypeError, IndexError, KeyError, UnicodeError) as exc:
        raise _bug(parser, filename, exc) from exc


def _bug(parser: Parser, filename: str, exc: Exception) -> ParseError:
    """A parser bug, which must still reject the file clearly."""
    return ParseError(f"{parser.name}: {exc}", filename=filename)


def _broken_text(data: bytes, filename: str, options: ParserOptions) -> ParseError | None:
    """The decoding error of a file whose byte-order mark says it is text but whose bytes then
    break (a UTF-16 export cut to an odd length, a broken surrogate), else None.

    Sniffers only look at text that decodes, so such a file would be "unrecognised"; the lab
    needs the line where it breaks instead (``text.decode``).
    """
    if not head(data).startswith(_BOMS):
        return None
    if len(data) > SNIFF_BYTES:
        return _broken_big_text(data, filename)
    try:
        decode(data, filename, configured=options.encoding_for(filename),
               default=options.default_encoding)
    except ParseError as exc:
        return exc
    return None


def _broken_big_text(data: bytes, filename: str) -> ParseError | None:
    """``_broken_text`` of a big file, decoded a chunk at a time rather than whole."""
    first = bytes(data[:3])
    encoding = ("utf-8-sig" if first.startswith(codecs.BOM_UTF8) else
                "utf-16-le" if first.startswith(codecs.BOM_UTF16_LE) else "utf-16-be")
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    lines, step = 1, 1 << 20
    for at in range(0, len(data), step):
        chunk = bytes(data[at:at + step])
        try:
            lines += decoder.decode(chunk, at + step >= len(data)).count("\n")
        except UnicodeDecodeError as exc:
            # The lines before the bad byte, as text.decode counts them.
            lines += chunk[:exc.start].decode(encoding, errors="ignore").count("\n")
            return ParseError(f"cannot decode as {encoding}: {exc.reason} near byte "
                              f"{at + exc.start} (of {len(data)}; a UTF-16 file cut short or "
                              "corrupted?)", line=lines, filename=filename)
    return None


def describe(data: bytes) -> str:
    """A short, human-readable description of what the first bytes look like."""
    size, data = len(data), head(data)
    if not data:
        return "the file is empty"
    if data.startswith(_ZIP) and b"xl/" in data[:65536]:
        return ("an Excel workbook (.xlsx) — read only through a [tables.NAME] column mapping "
                "in the configuration whose `files` globs match its name, and none does")
    if b"\x00" in data[:4096] and data[:2] not in (b"\xff\xfe", b"\xfe\xff"):
        return f"binary content ({size} bytes, starts {data[:8].hex()})"
    for bom, encoding in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"),
                          (codecs.BOM_UTF8, "utf-8")):
        if data.startswith(bom):  # the text it is, not its bytes escaped (UTF-16: \xff\xfeD\x00…)
            text = data[len(bom):len(bom) + 400].decode(encoding, "replace")
            break
    else:
        text = data[:200].decode("utf-8", "backslashreplace")
    first = text.strip().splitlines()[0] if text.strip() else ""
    # Quoted as written: repr would double a Windows path's backslashes and escape the rest.
    shown = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in first[:80])
    return f'text starting "{shown}"'


__all__ = ["MIN_CONFIDENCE", "NO_OPTIONS", "ParseError", "ParsedFile", "Parser", "ParserOptions",
           "adapt", "detect", "extensions", "head", "parse", "parse_set", "registered"]
