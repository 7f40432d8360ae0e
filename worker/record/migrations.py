"""Versioned schema migrations, applied in order and recorded in ``schema_version``.

Each migration is a function of the database, added at the end and never edited once released,
so an old installation upgrades by running exactly the steps it has not seen. The same steps
build the SQLite and the PostgreSQL schema. On PostgreSQL several processes (watchers and
consumers on different machines) may start at once: a session advisory lock lets one of them
migrate while the others wait, then find nothing left to do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from peewee import Database, Expression, PostgresqlDatabase, fn

from worker.record.models import TABLES, DuplicateCopy, SchemaVersion

# pg_advisory_lock key for migrations ("acmi"); the audit chain uses its own key.
PG_MIGRATION_LOCK = 0x61636D69


def _initial(db: Database) -> None:
    db.create_tables(TABLES, safe=True)


def _disposal_index(db: Database) -> None:
    # The watcher asks every second which of its own files became final and are still in its
    # inbox; with many instrument PCs on one database that must not scan the ledger.
    db.execute_sql("CREATE INDEX IF NOT EXISTS source_file_origin_disposed "
                   "ON source_file (origin, disposed)")


def _growth_indexes(db: Database) -> None:
    # Per-file work must not grow with the database: each of these lookups ran on an index that
    # matched every current row (``superseded``) or none (a path), i.e. a scan that grew with
    # every file ever ingested.
    for sql in (
        "CREATE INDEX IF NOT EXISTS result_current ON result (job_id, sample_id, superseded)",
        "CREATE INDEX IF NOT EXISTS injection_current ON injection (sample_id, superseded)",
        "CREATE INDEX IF NOT EXISTS source_file_path ON source_file (path, origin)",
        "CREATE INDEX IF NOT EXISTS sample_job_kind ON sample (job_id, kind)",
        # loose files join the Job of files first seen within minutes of them
        "CREATE INDEX IF NOT EXISTS source_file_first_seen ON source_file (first_seen)",
    ):
        db.execute_sql(sql)


def _injection_dilution(db: Database) -> None:
    # Quantity takes the dilution factor the file states (Chromeleon, Shimadzu) before the
    # configured one; it is a fact of the injection, kept so a later recompute still has it.
    from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate

    from worker.record.models import Injection

    if "dilution_factor" in {c.name for c in db.get_columns(Injection._meta.table_name)}:
        return  # a fresh database: migration 1 created the table as the model is today
    migrator = (PostgresqlMigrator(db) if isinstance(db, PostgresqlDatabase)
                else SqliteMigrator(db))
    migrate(migrator.add_column(Injection._meta.table_name, "dilution_factor",
                                Injection.dilution_factor))


def _audit_indexes(db: Database) -> None:
    # Each event went into two indexes on random keys (its hash and its file's SHA-256): an
    # insert touched a random page of a tree that grows with the trail, which cost 2.7 times
    # what the rest of the row did and rose with every file ingested. The hash needs no index
    # of its own (unique through seq); a file's events are looked up by its id.
    for sql in ("DROP INDEX IF EXISTS audit_event_hash",
                "DROP INDEX IF EXISTS audit_event_sha256",
                "CREATE INDEX IF NOT EXISTS audit_event_source_file_id "
                "ON audit_event (source_file_id)"):
        db.execute_sql(sql)


def _raw_packs(db: Database) -> None:
    # The raw store appends each intake batch to one pack file instead of creating a file per
    # content; a row says where its bytes are. Rows from before keep raw/ab/<sha256> (None).
    from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate

    from worker.record.models import SourceFile

    table = SourceFile._meta.table_name
    have = {c.name for c in db.get_columns(table)}
    migrator = (PostgresqlMigrator(db) if isinstance(db, PostgresqlDatabase)
                else SqliteMigrator(db))
    migrate(*[migrator.add_column(table, column, getattr(SourceFile, column))
              for column in ("raw_pack", "raw_offset") if column not in have])


def _path_bytes(db: Database) -> None:
    # A file name that is not UTF-8 (Latin-1 from older Windows PCs and shares, on Linux) cannot
    # be stored as text: the text shows its undecodable bytes as escapes, and these bytes find
    # the real file again, to move it out of the inbox.
    from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate

    from worker.record.models import SourceFile

    table = SourceFile._meta.table_name
    if "path_bytes" in {c.name for c in db.get_columns(table)}:
        return
    migrator = (PostgresqlMigrator(db) if isinstance(db, PostgresqlDatabase)
                else SqliteMigrator(db))
    migrate(migrator.add_column(table, "path_bytes", SourceFile.path_bytes))


def _disposal_intents(db: Database) -> None:
    # Disposal moved the file first and recorded it after: an outage or a full disk in between
    # left files in processed/ that the ledger called not disposed, later audited as gone.
    from worker.record.models import Disposal

    db.create_tables([Disposal], safe=True)


def _process_heartbeats(db: Database) -> None:
    # Each process renews its row every few seconds: a consumer on another machine that died
    # frees its files in seconds, not when their leases run out.
    from worker.record.models import ProcessBeat

    db.create_tables([ProcessBeat], safe=True)


def _sample_identity(db: Database) -> None:
    # Exports that print one sample name but say they are different samples (a standard at
    # level 3, one at level 2, an unknown) were merged into one Sample and their results
    # averaged: a sample is now its name and what its files say it is.
    from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate

    from worker.record.models import Sample, sample_identity

    table = Sample._meta.table_name
    if "identity" not in {c.name for c in db.get_columns(table)}:
        migrator = (PostgresqlMigrator(db) if isinstance(db, PostgresqlDatabase)
                    else SqliteMigrator(db))
        migrate(migrator.add_column(table, "identity", Sample.identity))
        for id_, kind, level in db.execute_sql(f"SELECT id, kind, level FROM {table}").fetchall():
            db.execute_sql(f"UPDATE {table} SET identity = %s WHERE id = %s"
                           if isinstance(db, PostgresqlDatabase) else
                           f"UPDATE {table} SET identity = ? WHERE id = ?",
                           (sample_identity(kind, level, None), id_))
    db.execute_sql(f"DROP INDEX IF EXISTS {table}_job_id_sample_id_analyte")
    db.execute_sql(f"CREATE UNIQUE INDEX IF NOT EXISTS {table}_job_id_sample_id_analyte_identity "
                   f"ON {table} (job_id, sample_id, analyte, identity)")


def _event_counts(db: Database) -> None:
    # Rejections were counted from the ledger's states, so a retry made the counter go down,
    # and every scrape scanned the ledger.
    # An installation that upgrades starts its counters from what the ledger holds now.
    from collections import Counter

    from worker.record import canaries, counters, sql
    from worker.record.models import INGESTED, REJECTED, EventCount, SourceFile

    db.create_tables([EventCount], safe=True)
    if EventCount.select().exists():
        return
    amounts: Counter[tuple[str, str]] = Counter()
    for row in (SourceFile.select(SourceFile.path, SourceFile.state, SourceFile.format,
                                  SourceFile.error, SourceFile.error_line, SourceFile.size)
                .where(SourceFile.state.in_([INGESTED, REJECTED])).iterator()):
        if not counters.counted(row.path):
            continue
        if row.state == INGESTED:
            amounts[(counters.INGESTED, row.format or "unknown")] += 1
            amounts[(counters.STORED_BYTES, "")] += row.size
        else:
            amounts[(counters.REJECTED, row.format or "unknown")] += 1
            amounts[(counters.REJECTED_REASON,
                     counters.reason_category(row.error, row.error_line))] += 1
    counters.add(amounts)
    for name, last in ((counters.LAST_INGEST, _last_ingest(canaries.not_canary_file())),
                       (counters.CANARY_LAST_INGEST, canaries.last_success())):
        if last is not None:
            sql.execute(counters.SET_SQL, (name, "", last.replace(tzinfo=UTC).timestamp()))


def _instrument_folders(db: Database) -> None:
    # A ChemStation .D folder is one injection with everything the instrument wrote: its
    # spectra, its files linked to it (context files included), and the facts and flags its
    # files state beyond the peaks.
    from worker.record.models import InjectionDetail, InjectionFile, PeakDetail, Spectrum

    db.create_tables([Spectrum, InjectionFile, InjectionDetail, PeakDetail], safe=True)


def _last_ingest(where: Expression) -> datetime | None:
    from worker.record.canaries import to_datetime
    from worker.record.models import INGESTED, SourceFile

    return to_datetime(SourceFile.select(fn.MAX(SourceFile.finished_at))
                       .where(SourceFile.state == INGESTED, where).scalar())


def _duplicate_copies(db: Database) -> None:
    db.create_tables([DuplicateCopy], safe=True)
    # The pages' throughput of the last hour and day reads finished files by time, not the
    # whole ledger.
    db.execute_sql("CREATE INDEX IF NOT EXISTS source_file_finished_state "
                   "ON source_file (finished_at, state)")
    # A file's page names its later revision; without this, a scan of the ledger.
    db.execute_sql("CREATE INDEX IF NOT EXISTS source_file_previous "
                   "ON source_file (previous_id)")


def _no_flag_indexes(db: Database) -> None:
    # Nearly every result and injection is current, so an index on the superseded flag alone
    # matches the whole table; given ``superseded = ?`` beside a sample's id, SQLite's planner
    # chose it over the sample's index, and a page or a chunk's read of "the current results
    # of these samples" scanned every current row. The composite indexes of migration 3 and
    # the sample's own index serve every lookup; a flag index only costs each insert.
    db.execute_sql("DROP INDEX IF EXISTS result_superseded")
    db.execute_sql("DROP INDEX IF EXISTS injection_superseded")


MIGRATIONS: list[tuple[int, str, Callable[[Database], None]]] = [
    (1, "initial schema: ledger, jobs, samples, injections, peaks, chromatograms, results, audit",
     _initial),
    (2, "index on the ledger's origin and disposed flag for the watcher's disposal poll",
     _disposal_index),
    (3, "indexes so per-file lookups (current results and injections, a path's revisions, a "
        "job's standards, loose files dropped together) do not grow with the database",
     _growth_indexes),
    (4, "injection.dilution_factor: the dilution the file states, for quantity",
     _injection_dilution),
    (5, "audit trail indexed by file id, not by its random hash and SHA-256 keys",
     _audit_indexes),
    (6, "source_file.raw_pack and raw_offset: raw bytes kept in pack files, one per batch",
     _raw_packs),
    (7, "source_file.path_bytes: the bytes of a path that is not UTF-8", _path_bytes),
    (8, "disposal table: where a source file goes, recorded before it is moved",
     _disposal_intents),
    (9, "process_heartbeat: a row per running process, renewed every few seconds",
     _process_heartbeats),
    (10, "sample.identity: a sample is its name and what its files say it is (kind, level, "
         "vial)", _sample_identity),
    (11, "event_count: counters of ingested, rejected, duplicate files and bytes stored",
     _event_counts),
    (12, "spectrum, injection_file, injection_detail, peak_detail: instrument folders' spectra, "
         "files, run facts and the peak columns Result.xml adds", _instrument_folders),
    (13, "duplicate_copy: a row per duplicate copy, which follows its original's fate; "
         "indexes on source_file (finished_at, state) and previous_id", _duplicate_copies),
    (14, "no index on the superseded flag alone (result, injection): lookups of current rows "
         "go by sample and job", _no_flag_indexes),
]


def current_version(db: Database) -> int:
    if not db.table_exists(SchemaVersion._meta.table_name):
        return 0
    last = SchemaVersion.select().order_by(SchemaVersion.version.desc()).first()
    return last.version if last else 0


@contextmanager
def _exclusive(db: Database) -> Iterator[None]:
    """One migrating process at a time. SQLite's BEGIN IMMEDIATE already serialises writers."""
    if not isinstance(db, PostgresqlDatabase):
        yield
        return
    db.execute_sql("SELECT pg_advisory_lock(%s)", (PG_MIGRATION_LOCK,))
    try:
        yield
    finally:
        db.execute_sql("SELECT pg_advisory_unlock(%s)", (PG_MIGRATION_LOCK,))


def apply(db: Database) -> list[int]:
    """Run the migrations this database has not had yet; returns the versions applied."""
    applied = []
    with _exclusive(db):
        db.create_tables([SchemaVersion], safe=True)
        with db.atomic():
            have = current_version(db)
            for version, description, step in MIGRATIONS:
                if version > have:
                    step(db)
                    SchemaVersion.create(version=version, description=description)
                    applied.append(version)
    return applied
