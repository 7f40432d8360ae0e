"""Versioned schema migrations, applied in order and recorded in ``schema_version``.

Each migration is a function of the database, added at the end and never edited once released,
so an old installation upgrades by running exactly the steps it has not seen.
"""

from __future__ import annotations

from collections.abc import Callable

from peewee import Database

from worker.models import TABLES, SchemaVersion


def _initial(db: Database) -> None:
    db.create_tables(TABLES, safe=True)


MIGRATIONS: list[tuple[int, str, Callable[[Database], None]]] = [
    (1, "initial schema: ledger, jobs, samples, injections, peaks, chromatograms, results, audit",
     _initial),
]


def current_version(db: Database) -> int:
    if not db.table_exists(SchemaVersion._meta.table_name):
        return 0
    last = SchemaVersion.select().order_by(SchemaVersion.version.desc()).first()
    return last.version if last else 0


def apply(db: Database) -> list[int]:
    """Run the migrations this database has not had yet; returns the versions applied."""
    db.create_tables([SchemaVersion], safe=True)
    applied = []
    with db.atomic():
        have = current_version(db)
        for version, description, step in MIGRATIONS:
            if version > have:
                step(db)
                SchemaVersion.create(version=version, description=description)
                applied.append(version)
    return applied
