"""record/sql.py: lists cut into pieces of a few fixed lengths, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from peewee import IntegerField, Model, TextField

from worker.record import db, sql
from worker.record.models import database
from worker.settings import Settings

# What both databases store as text: no NUL (PostgreSQL), no lone surrogate (UTF-8).
TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")


class Item(Model):
    label = TextField()
    n = IntegerField()

    class Meta:
        database = database
        table_name = "sql_test_item"


def test_every_list_is_cut_into_pieces_of_a_few_lengths_only() -> None:
    """A statement's text depends on its piece's length: however long the lists, their pieces
    come in no more lengths than CHUNK has binary digits, so the statements repeat."""
    lengths = {len(piece) for n in range(2000) for piece in sql.chunks(range(n))}
    assert len(lengths) <= sql.CHUNK.bit_length()
    assert max(lengths) == sql.CHUNK
    rows = {len(piece) for n in range(2000) for piece in sql.chunks(range(n), sql.INSERT_ROWS)}
    assert rows <= lengths and max(rows) == sql.INSERT_ROWS


@given(st.lists(st.integers(), max_size=1500), st.sampled_from(sql.SIZES))
def test_the_pieces_are_the_list_in_order_with_nothing_added(items: list[int],
                                                             most: int) -> None:
    pieces = list(sql.chunks(items, most))
    assert [x for piece in pieces for x in piece] == items
    assert all(0 < len(piece) <= most for piece in pieces)
    below = [len(piece) for piece in pieces if len(piece) < most]
    assert len(below) == len(set(below))  # at most one piece of each smaller length


@pytest.fixture(params=["sqlite", "postgresql"])
def opened(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    url = request.getfixturevalue("pg") if request.param == "postgresql" else None
    handle = db.open_database(Settings(database_url=url, data_dir=tmp_path / "data",
                                       inbox=tmp_path / "inbox"))
    handle.create_tables([Item])
    try:
        yield
    finally:
        handle.close()


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.text(TEXT, max_size=5), st.integers(-2**31, 2**31 - 1)),
                max_size=700))
def test_insert_writes_every_row_once_and_returns_their_ids_in_order(
        opened: None, values: list[tuple[str, int]]) -> None:
    """Cut into pieces of fixed lengths, every row is written once, none made up, and the ids
    come back in the rows' order; an IN list over them finds each once."""
    Item.delete().execute()
    ids = sql.insert(Item, ("label", "n"), values, returning=True)
    stored = [(r.id, r.label, r.n) for r in Item.select().order_by(Item.id)]
    assert stored == [(i, label, n) for i, (label, n) in zip(ids, values, strict=True)]
    found = [row for part in sql.chunks(ids) for row in sql.rows(
        f"SELECT id FROM {sql.table(Item)} WHERE id IN ({sql.marks(len(part))})", part)]
    assert sorted(r[0] for r in found) == ids
