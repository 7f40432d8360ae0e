"""Versioned migrations: an installation from before a step gets exactly that step."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from peewee import Database

from worker.record import db, migrations
from worker.settings import Settings


def _reopened_from_before(tmp_path: Path, version: int, undo: str) -> Database:
    """A database as the release before migration ``version`` left it (``undo`` takes that
    step back out of a fresh one), opened again by today's worker."""
    settings = Settings(data_dir=tmp_path / "data", inbox=tmp_path / "inbox")
    db.open_database(settings).close()
    con = sqlite3.connect(tmp_path / "data" / "accu-ingest.db")
    con.executescript(f"{undo}; DELETE FROM schema_version WHERE version >= {version};")
    con.commit()
    con.close()
    return db.open_database(settings)


def test_a_database_from_before_migration_4_gains_the_dilution_column(tmp_path: Path) -> None:
    database = _reopened_from_before(tmp_path, 4,
                                     "ALTER TABLE injection DROP COLUMN dilution_factor")
    try:
        columns = {c.name for c in database.get_columns("injection")}
        assert "dilution_factor" in columns
        assert migrations.current_version(database) == migrations.MIGRATIONS[-1][0]
        assert migrations.apply(database) == []  # nothing left to do the second time
    finally:
        database.close()


def test_a_database_from_before_migration_5_indexes_the_trail_by_file_not_by_random_keys(
        tmp_path: Path) -> None:
    database = _reopened_from_before(tmp_path, 5, """
        DROP INDEX audit_event_source_file_id;
        CREATE UNIQUE INDEX audit_event_hash ON audit_event (hash);
        CREATE INDEX audit_event_sha256 ON audit_event (sha256)""")
    try:
        indexes = {i.name for i in database.get_indexes("audit_event")}
        assert "audit_event_source_file_id" in indexes
        assert not indexes & {"audit_event_hash", "audit_event_sha256"}
        assert migrations.apply(database) == []
    finally:
        database.close()


def test_a_database_from_before_migration_6_gains_where_each_file_is_in_the_raw_packs(
        tmp_path: Path) -> None:
    database = _reopened_from_before(tmp_path, 6, """
        ALTER TABLE source_file DROP COLUMN raw_pack;
        ALTER TABLE source_file DROP COLUMN raw_offset""")
    try:
        columns = {c.name for c in database.get_columns("source_file")}
        assert {"raw_pack", "raw_offset"} <= columns
        assert migrations.apply(database) == []
    finally:
        database.close()


def test_a_database_from_before_migration_10_gains_sample_identity_filled_in(
        tmp_path: Path) -> None:
    database = _reopened_from_before(tmp_path, 10, """
        DROP INDEX sample_job_id_sample_id_analyte_identity;
        ALTER TABLE sample DROP COLUMN identity;
        CREATE UNIQUE INDEX sample_job_id_sample_id_analyte ON sample (job_id, sample_id, analyte);
        INSERT INTO job (id, key, name, created_at) VALUES (1, 'o:run1', 'run1', '2026-01-01');
        INSERT INTO sample (job_id, sample_id, kind, analyte, level)
            VALUES (1, 'Std', 'standard', '', 12.5), (1, 'Lot', 'sample', '', NULL)""")
    try:
        indexes = {i.name for i in database.get_indexes("sample")}
        assert "sample_job_id_sample_id_analyte_identity" in indexes
        assert "sample_job_id_sample_id_analyte" not in indexes
        identities = database.execute_sql(
            "SELECT sample_id, identity FROM sample ORDER BY sample_id").fetchall()
        assert identities == [("Lot", "sample"), ("Std", "standard; level 12.5")]
        assert migrations.apply(database) == []
    finally:
        database.close()


def test_a_database_from_before_migration_14_loses_the_superseded_flag_indexes(
        tmp_path: Path) -> None:
    """On them, "the current results of this sample" read every current result of the
    database (the planner took the flag's index): an installation of years slowed down."""
    database = _reopened_from_before(tmp_path, 14, """
        CREATE INDEX result_superseded ON result (superseded);
        CREATE INDEX injection_superseded ON injection (superseded)""")
    try:
        assert "result_superseded" not in {i.name for i in database.get_indexes("result")}
        assert "injection_superseded" not in {i.name for i in database.get_indexes("injection")}
        plan = [row[-1] for row in database.execute_sql(
            'EXPLAIN QUERY PLAN SELECT id FROM "result" WHERE sample_id = ? AND superseded = ?',
            (1, False))]
        assert any("result_sample_id" in step for step in plan), plan
        assert migrations.apply(database) == []
    finally:
        database.close()
