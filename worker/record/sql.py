"""Plain SQL for the statements every file runs: written once, run thousands of times.

Peewee builds a query's SQL afresh on every execution. On the per-file path that cost more than
the database itself: a 2,000-file burst spent about 60 % of its CPU generating SQL text for a
dozen small statements per file. The hot path writes those statements here, once, with ``?``
placeholders, and runs them on whichever database is open (SQLite or PostgreSQL); the ORM stays
for everything that does not run per file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from peewee import Model

from worker.record.models import database

CHUNK = 200  # rows per multi-row INSERT: well under every database's parameter limit


def _text(sql: str) -> str:
    param = database.obj.param
    return sql if param == "?" else sql.replace("?", param)


def execute(sql: str, params: Sequence[Any] = ()) -> Any:
    """Run one statement; returns the cursor."""
    return database.execute_sql(_text(sql), params)


def rows(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    return list(execute(sql, params).fetchall())


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
    one = f"({marks(len(columns))})"
    head = f"INSERT INTO {table(model)} ({', '.join(columns)}) VALUES "
    for start in range(0, len(values), CHUNK):
        chunk = values[start:start + CHUNK]
        text = head + ", ".join([one] * len(chunk)) + (" RETURNING id" if returning else "")
        params = [v for row in chunk for v in row]
        cursor = execute(text, params)
        if returning:
            ids += sorted(r[0] for r in cursor.fetchall())
    return ids
