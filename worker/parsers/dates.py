"""Acquisition times from the date strings vendors print (Shimadzu, Chromeleon, Empower).

Shared by the parsers so that one date layout is read one way everywhere; a date whose day/month
order cannot be settled is left None (the text stays in the metadata) rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime


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
