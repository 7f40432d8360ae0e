"""With fsync on, only the commits a power cut may take back at no cost skip the wait for the
disk: a consumer's lease (``ledger.claim_many``), the ``disposed`` mark after a move and a
process's heartbeat. The rows of a file, its Disposal record before the move, and everything
else stay synced.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from support.pipeline import Pipeline
from support.reports import report_bytes
from support.servers import fresh_postgres, require_servers

from worker.record import audit, db, heartbeat, ledger
from worker.record.models import ProcessBeat, SourceFile, database
from worker.settings import Settings

FULL, NORMAL = 2, 1


def _synchronous() -> int:
    return int(database.execute_sql("PRAGMA synchronous").fetchone()[0])


def _commits(statements: list[str]) -> list[tuple[int, str]]:
    """Each write transaction of ``statements``: the synchronous level its COMMIT ran at, and
    its statements as one text."""
    level, body, found = FULL, [], []
    for statement in statements:
        text = " ".join(statement.split())
        upper = text.upper()
        if upper.startswith("PRAGMA SYNCHRONOUS="):
            level = FULL if upper.endswith("FULL") else NORMAL
        elif upper.startswith("BEGIN"):
            body = []
        elif upper == "COMMIT":
            found.append((level, " ".join(body)))
        else:
            body.append(text)
    return found


def test_only_a_lease_and_a_disposed_mark_commit_unsynced(tmp_path: Path) -> None:
    pipeline = Pipeline.open(tmp_path)
    try:
        pipeline.drop("run/1_Report.csv", report_bytes(3, peaks=5))
        [row] = pipeline.take("run/1_Report.csv")
        statements: list[str] = []
        database.connection().set_trace_callback(statements.append)
        try:
            pipeline.ingest([row])
        finally:
            database.connection().set_trace_callback(None)
        assert SourceFile.get_by_id(row.id).disposed
        commits = _commits(statements)
        unsynced = [body for level, body in commits if level == NORMAL]
        synced = [body for level, body in commits if level == FULL]
        assert len(unsynced) == 2, unsynced
        claim, mark = unsynced
        assert "SET state = 'processing'" in claim and 'INSERT INTO "peak"' not in claim
        assert "SET disposed = 1" in mark
        assert any('INSERT INTO "peak"' in body for body in synced)  # the file's rows
        assert any('INSERT INTO "disposal"' in body for body in synced)  # before the move
        assert _synchronous() == FULL
    finally:
        pipeline.close()


def test_a_heartbeat_commits_unsynced_its_first_beat_and_the_next(tmp_path: Path) -> None:
    pipeline = Pipeline.open(tmp_path)
    try:
        statements: list[str] = []
        database.connection().set_trace_callback(statements.append)
        try:
            heartbeat.beat("host:1", "run", "node")
            first = ProcessBeat.get(ProcessBeat.owner == "host:1").beat_at
            time.sleep(0.01)
            heartbeat.beat("host:1", "run", "node")
        finally:
            database.connection().set_trace_callback(None)
        commits = _commits(statements)
        assert [level for level, _ in commits] == [NORMAL, NORMAL], commits
        assert ProcessBeat.get(ProcessBeat.owner == "host:1").beat_at > first
        assert _synchronous() == FULL
    finally:
        pipeline.close()


def test_a_failed_unsynced_transaction_rolls_back_and_leaves_commits_synced(
        tmp_path: Path) -> None:
    pipeline = Pipeline.open(tmp_path)
    try:
        pipeline.drop("a.csv", report_bytes(1))
        [row] = pipeline.take("a.csv")
        with pytest.raises(RuntimeError), db.unsynced():
            assert _synchronous() == NORMAL
            SourceFile.update(attempts=99).where(SourceFile.id == row.id).execute()
            raise RuntimeError("stop")
        assert SourceFile.get_by_id(row.id).attempts != 99
        assert _synchronous() == FULL
        with database.atomic(), db.unsynced():  # inside another's transaction: it decides
            assert _synchronous() == FULL
    finally:
        pipeline.close()


def test_with_fsync_off_nothing_is_synced_afterwards(tmp_path: Path) -> None:
    pipeline = Pipeline.open(tmp_path, fsync=False)
    try:
        with db.unsynced():
            pass
        assert _synchronous() == NORMAL
    finally:
        pipeline.close()


def test_on_postgresql_the_transaction_alone_commits_asynchronously(tmp_path: Path) -> None:
    require_servers()
    with fresh_postgres() as url:
        opened = db.open_database(Settings(inbox=tmp_path / "inbox", data_dir=tmp_path / "data",
                                           database_url=url))
        try:
            def setting() -> str:
                return str(database.execute_sql("SHOW synchronous_commit").fetchone()[0])

            with db.unsynced():
                assert setting() == "off"
            assert setting() == "on"
        finally:
            opened.close()


def test_a_claim_takes_the_chain_lock_before_its_rows_on_postgresql(tmp_path: Path) -> None:
    """A writer holding the audit chain's lock and then updating a file's row must not
    deadlock with a claim of that file: the claim waits for the chain first, as every writer
    does, instead of locking the row and then waiting for the chain (PostgreSQL aborted one
    of the two, and the claim's files waited for their leases)."""
    require_servers()
    with fresh_postgres() as url:
        pipeline = Pipeline.open(tmp_path, database_url=url)
        try:
            pipeline.drop("a.csv", report_bytes(2))
            [row] = pipeline.take("a.csv")
            chained, done = threading.Event(), threading.Event()
            errors: list[BaseException] = []
            claimed: list[list[int]] = []

            def writer() -> None:  # as a chunk's commit: the chain first, then rows
                try:
                    with database.atomic():
                        audit.lock_chain()
                        chained.set()
                        time.sleep(0.5)  # the claim meanwhile reaches its locks
                        (SourceFile.update(attempts=SourceFile.attempts)
                         .where(SourceFile.id == row.id).execute())
                except BaseException as exc:
                    errors.append(exc)
                finally:
                    database.close()
                    done.set()

            def claim() -> None:
                try:
                    claimed.append([r.id for r in ledger.claim_many([row.id], "other", 60)])
                except BaseException as exc:
                    errors.append(exc)
                finally:
                    database.close()

            threads = [threading.Thread(target=writer), threading.Thread(target=claim)]
            threads[0].start()
            assert chained.wait(10)
            threads[1].start()
            for thread in threads:
                thread.join(30)
            assert not errors, errors
            assert claimed == [[row.id]]
        finally:
            pipeline.close()
