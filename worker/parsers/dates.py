"""Acquisition times from the date strings vendors print.

Shared by the parsers so that one date layout is read one way everywhere; a date whose day/month
order cannot be settled is left None (the text stays in the metadata) rather than guessed.
``parse_timestamp`` reads the LabSolutions, Chromeleon and Empower strings; ChemStation's fixed
layouts (``parse_chemstation``) are read more strictly, one exact pattern each. ``acquisition``
wraps ``parse_timestamp`` for the parsers: it applies the ``date_order`` setting and the file's
other dates, and says why a date was not read, so the parser can flag it rather than drop it.

Non-US Windows PCs write dates their own way, and these are read too: ``21.2.2012. 13:16:57``
(a dot after the year, Croatian/Serbian), ``2019/1/7 下午 06:31:27`` (a Chinese, Japanese or
Korean AM/PM marker, before or after the time).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

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


def slash_date_order(texts: Iterable[str]) -> bool | None:
    """Whether a file's ``a/b/yyyy`` dates are day-first, from any date that settles it.

    One file is written in one locale, so a single ``25/3/2022`` (or ``3/25/2022``) anywhere in
    it decides all of them; None when no date in the file is unambiguous.
    """
    for text in texts:
        m = re.search(r"\b(\d{1,2})/(\d{1,2})/\d{4}\b", text)
        if m:
            a, b = int(m[1]), int(m[2])
            if a > 12 >= b:
                return True
            if b > 12 >= a:
                return False
    return None


_TIME_FORMATS = ("%H:%M:%S", "%H:%M", "%I:%M:%S %p", "%I:%M %p")
# AM/PM as Chinese (上午/下午), Japanese (午前/午後) and Korean (오전/오후) Windows write it.
_CJK_MERIDIEM = {"上午": "AM", "下午": "PM", "午前": "AM", "午後": "PM", "오전": "AM", "오후": "PM"}
_CJK_MARKER = re.compile(r"\s*(" + "|".join(_CJK_MERIDIEM) + r")\s*")
_YEAR_DOT = re.compile(r"(?<=[0-9]{4})\.(?=\s|$)")
_SLASH = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/[0-9]{4}\b")


def _normalised(text: str) -> str:
    """One spelling for the variants: a CJK AM/PM marker moved behind the time as AM/PM, the dot
    after a dotted date's year dropped."""
    text = " ".join(text.split())
    if m := _CJK_MARKER.search(text):
        text = f"{(text[:m.start()] + ' ' + text[m.end():]).strip()} {_CJK_MERIDIEM[m[1]]}"
        text = " ".join(text.split())
    return _YEAR_DOT.sub("", text)


def acquisition(text: str | None, *, others: Iterable[str] = (),
                date_order: str = "auto") -> tuple[datetime | None, str | None]:
    """The acquisition time and, when it could not be read, why (for the file's flags).

    The day/month order of an ``a/b/yyyy`` date comes from any unambiguous date in the file
    (``others``, the text itself included), else from ``date_order`` (``day-first`` or
    ``month-first``) when set, else from a 12-hour clock (US month-first); a date still open is
    not guessed: (None, reason), and the text stays in the metadata.
    """
    if text is None or not text.strip():
        return None, None
    cleaned = _normalised(text)
    # The file's own evidence first: one locale wrote the whole file, whatever the setting.
    day_first = slash_date_order([cleaned, *others])
    if day_first is None and date_order != "auto":
        day_first = date_order == "day-first"
    value = parse_timestamp(cleaned, day_first=day_first)
    if value is not None:
        return value, None
    if _SLASH.match(cleaned) and day_first is None:
        return None, (f"acquisition date {text.strip()!r} could be day-first or month-first; "
                      "set date_order (day-first or month-first) to read it")
    return None, f"acquisition date {text.strip()!r} is not a date layout the parser reads"


def parse_timestamp(text: str, *, day_first: bool | None = None) -> datetime | None:
    """A local (naive) acquisition time from a vendor date string, or None if it is ambiguous.

    ISO ``yyyy-mm-dd`` / ``yyyy/mm/dd`` and dotted ``dd.mm.yyyy`` are unambiguous. Slash dates
    ``a/b/yyyy`` are read with ``day_first`` when the file settles the order; otherwise a 12-hour
    clock (AM/PM) is taken as the US month-first convention LabSolutions, Chromeleon and Empower
    write in US locales, and a 24-hour slash date that could be either is left None rather than
    guessed (the raw text stays in the metadata). A trailing time-zone abbreviation (``PDT``) is
    dropped: the value is the instrument PC's local time.
    """
    cleaned = re.sub(r"\s+(?!AM$|PM$)[A-Z]{2,5}$", "", " ".join(text.split()))
    cleaned = re.sub(r"\s+(?:a\.?m\.?|p\.?m\.?)$",
                     lambda m: " " + m[0].strip().replace(".", "").upper(), cleaned,
                     flags=re.IGNORECASE)
    date_formats: list[str] = ["%Y-%m-%d", "%Y/%m/%d", "%d.%m.%Y"]
    twelve_hour = cleaned.endswith(("AM", "PM"))
    if day_first is True:
        date_formats.append("%d/%m/%Y")
    elif day_first is False or twelve_hour:
        date_formats.append("%m/%d/%Y")
    else:
        m = re.match(r"(\d{1,2})/(\d{1,2})/\d{4}\b", cleaned)
        if m and (int(m[1]) > 12 or int(m[1]) == int(m[2])):
            date_formats.append("%d/%m/%Y")
        elif m and int(m[2]) > 12:
            date_formats.append("%m/%d/%Y")
    for date_format in date_formats:
        for time_format in _TIME_FORMATS:
            for separator in (" ", "T"):
                try:
                    return datetime.strptime(cleaned, f"{date_format}{separator}{time_format}")
                except ValueError:
                    continue
    return None


def parse_chemstation(value: str) -> datetime | None:
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
