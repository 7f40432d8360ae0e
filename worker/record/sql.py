"""Plain SQL for the statements every file runs: written once, run thousands of times.

Peewee builds a query's SQL afresh on every execution. On the per-file path that cost more than
the database itself: a 2,000-file burst spent about 60 % of its CPU generating SQL text for a
dozen small statements per file. The hot path writes those statements here, once, with ``?``
placeholders, and runs them on whichever database is open (SQLite or PostgreSQL); the ORM stays
for everything that does not run per file.

On PostgreSQL the statements go to the server with its own numbered placeholders (``$1``, …)
through a raw cursor: psycopg's usual ``%s`` placeholders are found by parsing the text in Python
on every execution of a statement longer than 4 KiB (it caches only shorter ones), and a chunk's
multi-row INSERTs of a few thousand values spent a fifth of a consumer's CPU there.

Lists are cut into pieces whose lengths come from a few fixed sizes (``chunks``), so a
statement's text repeats: each database prepares it once and reuses it from its statement cache
(SQLite's per connection, psycopg's server-side prepared statements). Cut anyhow, the lengths of
a burst's lists made hundreds of distinct statements per consumer, each prepared, cached for a
while and thrown away, holding memory all the while.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from typing import Any, TypeVar

from peewee import Model, PostgresqlDatabase, __exception_wrapper__

from worker.record.models import database

# The most rows in one multi-row INSERT or values in one IN list: well under every database's
# parameter limit, and a whole ingest task's files (queue.BATCH) in one statement. A power of
# two, so that SIZES can make up any list.
CHUNK = 256
SIZES = tuple(1 << n for n in range(CHUNK.bit_length()))  # 1, 2, 4, … CHUNK: a piece's lengths
# The most rows in one multi-row INSERT, below CHUNK: SQLite's prepared statement grows with
# its rows (CHUNK rows of a dozen columns hold more memory than a whole page cache, for as long
# as the statement stays in its connection's cache), while a row costs the same to insert in
# a long statement or a shorter one.
INSERT_ROWS = 64
T = TypeVar("T")

# SQLite's module binds int, float and str as they are, and looks every other value up among
# the registered adapters, then asks the value's type for an adapter by name: each miss raises
# an AttributeError inside (a formatted message made and thrown away) before the value is bound
# as it is after all. A chunk binds NULLs and flags by the thousand (results, peaks, audit
# events), so these are registered as what they are bound as anyway.
sqlite3.register_adapter(type(None), lambda value: value)
sqlite3.register_adapter(bool, int)
sqlite3.register_adapter(bytes, lambda value: value)


@functools.lru_cache(maxsize=256)
def _numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1``, ``$2``, …"""
    parts = sql.split("?")
    return "".join([f"{part}${n}" for n, part in enumerate(parts[:-1], 1)]) + parts[-1]


def execute(sql: str, params: Sequence[Any] = ()) -> Any:
    """Run one statement; returns the cursor."""
    db = database.obj
    if not isinstance(db, PostgresqlDatabase):
        return db.execute_sql(sql, params)
    import psycopg  # only here: a process on SQLite may have left it out (runtime.drivers)

    with __exception_wrapper__:  # psycopg's errors as peewee's, as for every other query
        cursor = psycopg.RawCursor(db.cursor().connection)  # db.cursor(): (re)connects
        cursor.execute(_numbered(sql), params)
    return cursor


def rows(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    return list(execute(sql, params).fetchall())


def chunks(items: Sequence[T], most: int = CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in order, in consecutive pieces whose lengths are in SIZES: ``most`` (one of
    SIZES) at a time, then the rest by its binary digits, largest first (100 items: 64, 32, 4).

    Nothing is padded or repeated, so a piece serves an IN list and a multi-row VALUES alike,
    and whatever the caller does with its items stays right.
    """
    rest = len(items) % most
    start = len(items) - rest
    yield from (items[i:i + most] for i in range(0, start, most))
    for size in reversed(SIZES):
        if rest & size:
            yield items[start:start + size]
            start += size


def marks(n: int) -> str:
    """``?, ?, …`` for an IN list of ``n`` values."""
    return ", ".join("?" * n)


def table(model: type[Model]) -> str:
    return f'"{model._meta.table_name}"'


def insert(model: type[Model], columns: Sequence[str], values: Iterable[Sequence[Any]],
           returning: bool = False) -> list[int]:
    """Insert rows with multi-row VALUES; with ``returning``, their ids in the rows' order.

    Ids come back sorted: within one statement both SQLite (rowid = max + 1) and PostgreSQL (a
    sequence) hand out increasing ids in the order of the VALUES, while the order of RETURNING
    rows itself is not promised by either.
    """
    values = list(values)
    ids: list[int] = []
    for chunk in chunks(values, INSERT_ROWS):
        text = _insert_text(table(model), tuple(columns), len(chunk), returning)
        params = list(chain.from_iterable(chunk))
        cursor = execute(text, params)
        if returning:
            ids += sorted(r[0] for r in cursor.fetchall())
    return ids


@functools.lru_cache(maxsize=128)
def _insert_text(table: str, columns: tuple[str, ...], rows: int, returning: bool) -> str:
    """The same few statements every chunk: built (and numbered) once."""
    one = f"({marks(len(columns))})"
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([one] * rows)
            + (" RETURNING id" if returning else ""))
