"""Stable cursors: a page ends at a row's key, and the next page starts below it.

Keyset paging rather than offsets, so files arriving while someone reads page 3 do not shift
page 4, and page 2,000 costs what page 1 does (one index range, never a count of skipped rows).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class BadQuery(ValueError):
    """A query parameter that cannot be read; the message names it and what was expected."""


@dataclass
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None

    def to_json(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor}


def cursor(value: str | None) -> int | None:
    """The key a page starts below (None: the first page)."""
    if not value:
        return None
    if not value.isdigit():
        raise BadQuery(f"cursor {value!r}: expected the next_cursor of a previous page")
    return int(value)


def limit(value: str | None) -> int:
    if not value:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise BadQuery(f"limit {value!r}: expected a whole number from 1 to {MAX_LIMIT}")
    return int(value)


def when(name: str, value: str | None) -> datetime | None:
    """A UTC date or time from a query (``2026-01-13`` or ``2026-01-13T15:30``)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadQuery(f"{name} {value!r}: expected a UTC date or time such as 2026-01-13 or "
                       "2026-01-13T15:30") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def page(rows: list[dict[str, Any]], size: int, key: str = "id") -> Page:
    """``rows`` read with one row more than ``size``: that extra row says a next page exists."""
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows, str(rows[-1][key]) if more and rows else None)
