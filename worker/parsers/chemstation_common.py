"""What the two Agilent ChemStation parsers (Report.TXT and the CSV report set) share.

Both exports describe the same injection with the same run facts and the same peak fields, so the
rules for reading them live here once: that way the TXT and the CSV of one ``.D`` folder give the
same ``ParsedFile`` fields, which the tests check. This module is not a parser itself (it has no
entry point).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from worker.parsers.base import ParseError, Peak, validated
from worker.parsers.options import ParserOptions
from worker.parsers.text import decode, split_lines

# A small whole number: short enough that int() can never refuse it.
WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")

_SIG_WAVELENGTH = re.compile(r"\bSig=([0-9]{1,5}(?:\.[0-9]{1,5})?)")
_VIAL = re.compile(r"vial\s+(\S+)", re.IGNORECASE)

# Characters that have no business in a text export; one of them means corruption or a binary
# file, and NUL would also be refused by PostgreSQL text columns further down the line.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])


def decode_lines(data: bytes, filename: str,
                 options: ParserOptions) -> tuple[list[str], str]:
    """Decode exactly (never replacing a byte) and split into lines; returns (lines, encoding).

    ``text.decode`` turns a cut or corrupted UTF-16 file into a ``ParseError`` with its line.
    """
    text, encoding = decode(data, filename, configured=options.encoding_for(filename),
                            default=options.default_encoding)
    lines = split_lines(text)
    if not has_control(text):
        return lines, encoding
    for number, line in enumerate(lines, start=1):
        bad = _CONTROL.search(line)
        if bad:
            raise ParseError(f"control character {bad.group()!r} in text", line=number,
                             filename=filename)
    return lines, encoding


def has_control(text: str) -> bool:
    """Whether ``_CONTROL`` matches anywhere in ``text`` (so in one of its lines: a line break is
    no control character), in two passes in C rather than a regex scan of every character."""
    # Latin-1 with "?" for whatever it cannot encode: one byte per character, and the control
    # characters keep their byte.
    return len(text.encode("latin-1", "replace").translate(None, _CONTROL_BYTES)) != len(text)


def sniff_text(data: bytes, filename: str, options: ParserOptions) -> str | None:
    """The text ``decode_lines`` splits into lines, or None where it would raise ``ParseError``."""
    try:
        text, _ = decode(data, filename, configured=options.encoding_for(filename),
                         default=options.default_encoding)
    except ParseError:
        return None
    return None if has_control(text) else text


def signal_description(text: str) -> str:
    """``FID1 A, `` → ``FID1 A``: both exports end a description without a wavelength with a
    comma, which is layout, not name."""
    return text.strip().rstrip(",").strip()


def describe_signal(description: str) -> tuple[str | None, float | None]:
    """Detector and wavelength from ``DAD1 A, Sig=210,4 Ref=360,100`` (210 nm, bandwidth 4; the
    reference stays in the signal name) or ``FID1 A`` (no wavelength)."""
    detector = description.split(",", 1)[0].strip() or None
    wavelength = _SIG_WAVELENGTH.search(description)
    return detector, float(wavelength.group(1)) if wavelength else None


def vial_from_location(location: str) -> str | None:
    """The vial position: ``Vial 1`` (Report.TXT) and ``1`` (Report00.CSV) are the same vial 1.

    Other location forms (tray/well names such as ``P1-A-01``) are kept as printed.
    """
    text = location.strip()
    if not text:
        return None
    m = _VIAL.fullmatch(text)
    return m.group(1) if m else text


def injection_number(value: str) -> int | None:
    """``Inj`` as an integer; anything else (never seen) stays only in the metadata."""
    text = value.strip()
    return int(text) if WHOLE_NUMBER.fullmatch(text) else None


REQUIRED = ("number", "rt_min", "area")


def read_peak(cells: Mapping[str, str], line: int, before: list[Peak], filename: str, *,
              text_fields: tuple[str, ...],
              number: Callable[[str, str, int, str], float]) -> Peak:
    """One peak row of either export (cells by ``Peak`` field); peak numbers must rise, so a
    repeated row cannot pass unnoticed. ``number(cell, field, line, filename)`` reads a numeric
    cell the way the export prints it."""
    number_cell = cells["number"].strip()
    if not WHOLE_NUMBER.fullmatch(number_cell):
        raise ParseError(f"peak number {number_cell!r} is not a whole number", line=line,
                         filename=filename)
    peak_number = int(number_cell)
    if before and peak_number <= before[-1].number:
        raise ParseError(f"peak number {peak_number} does not follow {before[-1].number}",
                         line=line, filename=filename)
    fields: dict[str, object] = {"number": peak_number}
    for field, cell in cells.items():
        if field == "number":
            continue
        if field in text_fields:
            fields[field] = cell.strip() or None
        elif cell.strip():
            fields[field] = number(cell, field, line, filename)
        elif field in REQUIRED:
            raise ParseError(f"{field} is empty", line=line, filename=filename)
    with validated("invalid peak row", line=line, filename=filename):
        return Peak(line=line, **fields)  # type: ignore[arg-type]
