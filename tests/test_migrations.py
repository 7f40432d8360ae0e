"""Versioned migrations: an installation from before a step gets exactly that step."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from worker import db, migrations
from worker.settings import Settings


def test_a_database_from_before_migration_4_gains_the_dilution_column(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", inbox=tmp_path / "inbox")
    db.open_database(settings).close()
    path = tmp_path / "data" / "accu-ingest.db"
    con = sqlite3.connect(path)
    con.execute("ALTER TABLE injection DROP COLUMN dilution_factor")  # as release 3 made it
    con.execute("DELETE FROM schema_version WHERE version >= 4")
    con.commit()
    con.close()

    database = db.open_database(settings)
    try:
        columns = {c.name for c in database.get_columns("injection")}
        assert "dilution_factor" in columns
        assert migrations.current_version(database) == migrations.MIGRATIONS[-1][0]
        assert migrations.apply(database) == []  # nothing left to do the second time
    finally:
        database.close()


def test_a_database_from_before_migration_5_indexes_the_trail_by_file_not_by_random_keys(
        tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", inbox=tmp_path / "inbox")
    db.open_database(settings).close()
    path = tmp_path / "data" / "accu-ingest.db"
    con = sqlite3.connect(path)
    con.executescript("""
        DROP INDEX audit_event_source_file_id;
        CREATE UNIQUE INDEX audit_event_hash ON audit_event (hash);
        CREATE INDEX audit_event_sha256 ON audit_event (sha256);
        DELETE FROM schema_version WHERE version >= 5;
    """)  # as release 4 made it
    con.commit()
    con.close()

    database = db.open_database(settings)
    try:
        indexes = {i.name for i in database.get_indexes("audit_event")}
        assert "audit_event_source_file_id" in indexes
        assert not indexes & {"audit_event_hash", "audit_event_sha256"}
        assert migrations.apply(database) == []
    finally:
        database.close()
