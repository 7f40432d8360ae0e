"""Opening the database named by the settings, and bringing its schema up to date.

SQLite runs in WAL mode with a busy timeout, foreign keys on, and write transactions begun
IMMEDIATE so two writers queue on the lock instead of failing half-way through a transaction;
a file lock beside the database hands the write lock from one process to the next promptly.

A PostgreSQL connection that the server or the network dropped is replaced by a new one at the
next query outside a transaction (PostgresqlHealingDatabase), so every long-running thread
survives a restart of the server; Backoff spaces their attempts while it is away.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from peewee import Database, InterfaceError, OperationalError, PostgresqlDatabase, SqliteDatabase

from worker.record import audit, migrations
from worker.record.filelock import FileLock
from worker.record.models import database
from worker.settings import Settings

BUSY_TIMEOUT_S = 30
# SQLite's page cache of each connection (each thread has its own), well below SQLite's
# default. Any other connection's commit empties it (WAL), and through a burst the watcher and
# consumers commit all the time, so pages were seldom read twice: a larger cache only held
# more memory, in every thread of every process.
CACHE_KIB = 250
# Prepared statements each connection keeps (Python's default is 128). sql.chunks cuts lists
# into a few fixed lengths, so the statements a burst runs repeat and stay prepared; each one
# cached holds memory, a multi-row INSERT much of it, so the cache stays short.
CACHED_STATEMENTS = 48
# A server that does not answer must not hold a thread for ever: connecting gives up after this,
# and TCP keepalives end a connection whose server vanished without a reset (libpq options).
PG_OPTIONS = {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 10,
              "keepalives_interval": 5, "keepalives_count": 3}
DB_ERRORS = (OperationalError, InterfaceError)


class DatabaseUnavailable(Exception):
    """The configured database cannot be opened; the message names the URL without password."""


def redact(url: str) -> str:
    """The URL with its password replaced, safe for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class QueuedSqliteDatabase(SqliteDatabase):
    """SQLite whose writers take turns through a file lock before ``BEGIN IMMEDIATE``.

    SQLite's busy handler makes a waiting writer sleep and retry (1, 2, 5 … 100 ms), so with
    consumers in several processes the write lock often sat free while they all slept; the
    file lock hands it on within 2 ms. After the busy timeout a writer goes on to SQLite
    without it, so a stuck holder still ends in SQLite's own error.
    """

    def __init__(self, database: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self.writers = FileLock(database + ".writers")
        self._wait = threading.local()
        # Whether commits are synced to the disk (the fsync setting): what ``unsynced`` puts
        # back after its transaction.
        self.synced = dict(kwargs.get("pragmas") or {}).get("synchronous") == "full"

    @contextmanager
    def writer_wait(self, seconds: float) -> Iterator[None]:
        """This thread's writers wait at most ``seconds`` for their turn (a probe must answer
        within its own timeout, not the busy timeout)."""
        self._wait.seconds = seconds
        try:
            yield
        finally:
            self._wait.seconds = None

    def begin(self, lock_type: str | None = None) -> None:
        self.writers.acquire(getattr(self._wait, "seconds", None) or BUSY_TIMEOUT_S)
        try:
            super().begin(lock_type)
        except BaseException:
            self.writers.release()
            raise

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.writers.release()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.writers.release()


def open_database(settings: Settings, migrate: bool = True) -> Database:
    """Open (and by default migrate) the database; binds the models' proxy to it."""
    url = settings.database
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path != ":memory:":
            from pathlib import Path
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kind = SqliteDatabase if path == ":memory:" else QueuedSqliteDatabase
        db: Database = kind(
            path, timeout=BUSY_TIMEOUT_S, lock_type="IMMEDIATE", check_same_thread=False,
            cached_statements=CACHED_STATEMENTS,
            pragmas={
                "journal_mode": "wal",
                "foreign_keys": 1,
                "busy_timeout": BUSY_TIMEOUT_S * 1000,
                "synchronous": "full" if settings.fsync else "normal",
                "cache_size": -CACHE_KIB,
            })
    elif url.startswith(("postgresql://", "postgres://")):
        # psycopg 3 is the one PostgreSQL driver we install (Huey's PostgresHuey needs it too);
        # peewee 4 would pick psycopg2 whenever that happens to be installed as well. peewee
        # maps FloatField to REAL (float4) on PostgreSQL: 7 digits, leases rounded to 128 s and
        # peak areas cut. SQLite's REAL is float8, so float8 on both keeps them the same.
        # Imported here: playhouse.db_url imports every playhouse database extension (SQLite's
        # user functions, MySQL's, a pool), which a process on SQLite would only hold.
        from playhouse.db_url import parse
        params = parse(url.replace("postgres://", "postgresql://", 1))
        db = PostgresqlHealingDatabase(**{**PG_OPTIONS, **params}, prefer_psycopg3=True,
                                       field_types={"FLOAT": "DOUBLE PRECISION"})
    else:
        raise DatabaseUnavailable(f"database {redact(url)}: expected sqlite:///… or "
                                  "postgresql://…")
    try:
        db.connect(reuse_if_open=True)
    except Exception as exc:
        raise DatabaseUnavailable(f"cannot connect to database {redact(url)}: "
                                  f"{describe_error(exc, url)}") from exc
    database.initialize(db)
    audit.attach(settings)
    if migrate:
        try:
            migrations.apply(db)
        except Exception as exc:
            raise DatabaseUnavailable(f"cannot bring the schema of {redact(url)} up to date: "
                                      f"{describe_error(exc, url)}") from exc
    return db


@contextmanager
def unsynced() -> Iterator[None]:
    """A write transaction whose commit does not wait for the disk, for what a power cut may
    take back at no cost: a lease (the file is queued again, its parse is pure) or a
    ``disposed`` mark (its Disposal record, committed synced before the move, makes the next
    pass record it again).

    SQLite's WAL and PostgreSQL's log are written in commit order, so the next synced commit
    of any writer syncs this one too, and a power cut can only take the last commits: never
    one without those after it, so the audit chain stays whole. A process that crashes loses
    nothing (the system has its pages). Inside another transaction that one's commit decides.
    """
    db = database.obj
    if db.in_transaction():
        with database.atomic():
            yield
    elif isinstance(db, QueuedSqliteDatabase) and db.synced:
        db.execute_sql("PRAGMA synchronous=NORMAL")  # outside a transaction: not a write
        try:
            with database.atomic():
                yield
        finally:
            db.execute_sql("PRAGMA synchronous=FULL")
    elif is_postgres(db):
        with database.atomic():
            db.execute_sql("SET LOCAL synchronous_commit = off")
            yield
    else:
        with database.atomic():
            yield


class PostgresqlHealingDatabase(PostgresqlDatabase):
    """PostgreSQL whose threads get a new connection once theirs is dead.

    peewee keeps a thread's connection until it is closed, and a connection the server dropped
    (a restart, a failover, a reset by the network) is never closed: every later query of that
    thread failed with "the connection is closed" for ever. A transaction that was open on it
    already failed with the connection; the next one, or the next query outside a transaction,
    starts on a fresh connection. (Its name starts with "Postgres": audit.lock_chain and
    results.job tell PostgreSQL by that.)
    """

    def cursor(self, named_cursor: Any = None) -> Any:
        if not self.is_closed() and not self.in_transaction() and self._dead():
            self._drop()
        return super().cursor(named_cursor)

    def _dead(self) -> bool:
        conn = self._state.conn
        return conn is None or bool(conn.closed) or bool(getattr(conn, "broken", False))

    def _drop(self) -> None:
        conn = self._state.conn
        self._state.reset()
        if conn is not None:
            with suppress(Exception):  # it is dead already; closing only frees its memory
                conn.close()


class Backoff:
    """The wait of a loop after each failure in a row: first, doubling, at most ``most``."""

    def __init__(self, first: float = 0.5, most: float = 10.0) -> None:
        self.first, self.most = first, most
        self.failures = 0

    def failed(self) -> float:
        """Count one more failure; the seconds to wait before trying again."""
        self.failures += 1
        return min(self.first * 2 ** (self.failures - 1), self.most)

    def succeeded(self) -> None:
        self.failures = 0


def connection_lost() -> bool:
    """After a failed query: is this thread's PostgreSQL connection gone (dropped, or none could
    be opened)? Then trying the same work again once it is back is right; SQLite has no
    connection to lose."""
    db = database.obj
    if not isinstance(db, PostgresqlHealingDatabase):
        return False
    return db.is_closed() or db._dead()


def describe_error(exc: BaseException, url: str) -> str:
    """Driver errors run to several lines of hints; the first says what failed."""
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


def is_postgres(db: Database) -> bool:
    return isinstance(db, PostgresqlDatabase)


def database_now() -> float:
    """Epoch seconds by the database's clock on PostgreSQL, so lease expiry does not depend on
    the clocks of the machines that share it agreeing; SQLite is on this machine anyway."""
    if is_postgres(database.obj):
        return float(database.obj.execute_sql(
            "SELECT extract(epoch FROM clock_timestamp())").fetchone()[0])
    return time.time()
