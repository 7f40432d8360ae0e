"""Keeping the PostgreSQL and Redis client libraries out of a process whose settings do not use
them.

peewee imports psycopg (or psycopg2) and Huey imports redis whenever they are installed,
whatever the configured URLs say; the scale-out extras install them. That costs ~15 MB of
resident memory in every process of the worker (``run`` and each of its consumer processes),
though on embedded defaults (SQLite database and queue) neither is ever used.

A process entry point calls ``leave_out_unused`` once its settings are known and before peewee
or Huey are imported. Both import these libraries optionally, so a library left out reads to
them as not installed. Only entry points call it: a library user or a test process may open
another database later, and must find its driver.
"""

from __future__ import annotations

import sys

from worker.settings import Settings

# peewee tries psycopg2cffi, psycopg2 and psycopg; Huey's PostgresStorage needs psycopg.
POSTGRESQL = ("psycopg", "psycopg2", "psycopg2cffi")
REDIS = ("redis",)
# Once these are imported they hold the drivers (or their absence) already.
IMPORTERS = ("peewee", "huey")


def _scheme(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else ""


def unused(settings: Settings) -> tuple[str, ...]:
    """The client libraries neither the database nor the queue of these settings needs."""
    schemes = {_scheme(settings.database), _scheme(settings.queue)}
    left_out: tuple[str, ...] = ()
    if not schemes & {"postgresql", "postgres"}:
        left_out += POSTGRESQL
    if not schemes & {"redis", "rediss"}:
        left_out += REDIS
    return left_out


def leave_out_unused(settings: Settings) -> tuple[str, ...]:
    """Make the unused client libraries unimportable in this process; returns their names.

    Does nothing once peewee or Huey is imported: they have imported the drivers by then.
    A library already imported stays (something in this process uses it).
    """
    if any(name in sys.modules for name in IMPORTERS):
        return ()
    left_out = tuple(name for name in unused(settings) if name not in sys.modules)
    for name in left_out:
        sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
    return left_out
