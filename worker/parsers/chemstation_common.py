"""What the two Agilent ChemStation parsers (Report.TXT and the CSV report set) share.

Both exports describe the same injection with the same run facts and the same peak fields, so the
rules for reading them live here once: that way the TXT and the CSV of one ``.D`` folder give the
same ``ParsedFile`` fields, which the tests check. This module is not a parser itself (it has no
entry point).
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import ValidationError

from worker.parsers.base import ParseError, Peak
from worker.parsers.text import decode, split_lines

_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}

# Date layouts ChemStation writes, each unambiguous. A day/month order we cannot be sure of
# (e.g. ``05/06/2023 14:00:00`` without AM/PM) is deliberately not read: a wrong date is worse
# than none, and the text stays in the metadata.
# (Digits are spelled [0-9] throughout: ``\d`` would also accept other scripts' digits.)
_US = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4}) ([0-9]{1,2}):([0-9]{2}):([0-9]{2}) "
                 r"([AP]M)", re.IGNORECASE)
_DMONY = re.compile(r"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{2}|[0-9]{4}),? "
                    r"([0-9]{1,2}):([0-9]{2}):([0-9]{2})")
_DOTTED = re.compile(r"([0-9]{1,2})\.([0-9]{1,2})\.([0-9]{4}),? "
                     r"([0-9]{1,2}):([0-9]{2}):([0-9]{2})")
_ISO = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[ T]([0-9]{2}):([0-9]{2}):([0-9]{2})")
# A small whole number: short enough that int() can never refuse it.
WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")

_SIG_WAVELENGTH = re.compile(r"\bSig=([0-9]{1,5}(?:\.[0-9]{1,5})?)")
_VIAL = re.compile(r"vial\s+(\S+)", re.IGNORECASE)

# Characters that have no business in a text export; one of them means corruption or a binary
# file, and NUL would also be refused by PostgreSQL text columns further down the line.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])


def decode_lines(data: bytes, filename: str) -> tuple[list[str], str]:
    """Decode exactly (never replacing a byte) and split into lines; returns (lines, encoding).

    ``text.decode`` turns a cut or corrupted UTF-16 file into a ``ParseError`` with its line.
    """
    text, encoding = decode(data, filename)
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


def sniff_text(data: bytes, filename: str) -> str | None:
    """The text ``decode_lines`` splits into lines, or None where it would raise ``ParseError``."""
    try:
        text, _ = decode(data, filename)
    except ParseError:
        return None
    return None if has_control(text) else text


def parse_datetime(value: str) -> datetime | None:
    """The injection time from one of ChemStation's unambiguous layouts, else None.

    The result is naive: ChemStation prints the instrument PC's local time without a zone.
    Two-digit years (``24-Jul-23``) are taken as 20yy, ChemStation being a 21st-century program.
    """
    text = " ".join(value.split())
    try:
        if m := _US.fullmatch(text):
            month, day, year, hour, minute, second = (int(g) for g in m.groups()[:6])
            if not 1 <= hour <= 12:
                return None
            hour = hour % 12 + (12 if m.group(7).upper() == "PM" else 0)
            return datetime(year, month, day, hour, minute, second)
        if m := _DMONY.fullmatch(text):
            month = _MONTHS.get(m.group(2).lower())
            if month is None:
                return None
            year = int(m.group(3))
            year = year + 2000 if year < 100 else year
            day, hour, minute, second = (int(m.group(i)) for i in (1, 4, 5, 6))
            return datetime(year, month, day, hour, minute, second)
        if m := _DOTTED.fullmatch(text):
            day, month, year, hour, minute, second = (int(g) for g in m.groups())
            return datetime(year, month, day, hour, minute, second)
        if m := _ISO.fullmatch(text):
            return datetime(*(int(g) for g in m.groups()))
    except ValueError:  # a day or month out of range: not a date we can trust
        return None
    return None


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


def make_peak(line: int, filename: str, **fields: object) -> Peak:
    """A ``Peak``, with the model's own checks (finite, area ≥ 0, Area% ≤ 100) turned into a
    ``ParseError`` on the row's line rather than a pydantic error escaping the parser."""
    try:
        return Peak(line=line, **fields)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ParseError(f"invalid peak row ({problems})", line=line, filename=filename) from None
