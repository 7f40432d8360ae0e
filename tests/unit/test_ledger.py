"""The ledger's transitions on a real SQLite file: each allowed change with its audit event, an
illegal one refused, leases lost and raced for, dead holders recognised, duplicates registered."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from worker.record import audit, db, ledger
from worker.record.models import AuditEvent, Job, ProcessBeat, SourceFile
from worker.record.store import Location
from worker.settings import Settings


@pytest.fixture
def database(tmp_path: Path) -> Iterator[None]:
    settings = Settings(inbox=tmp_path / "inbox", data_dir=tmp_path / "data")
    opened = db.open_database(settings)
    yield
    opened.close()


def seen(n: int, path: str | None = None) -> ledger.Seen:
    return ledger.Seen(path=path or f"run/S{n}.csv", size=10 + n, mtime_ns=1000 + n,
                       sha256=f"{n:064x}", detected_at=1.0, stable_at=2.0)


def events(file_id: int) -> list[tuple[str, dict[str, object]]]:
    return [(e.event, json.loads(e.details)) for e in AuditEvent.select()
            .where(AuditEvent.source_file_id == file_id).order_by(AuditEvent.seq)]


def new_file(n: int, owner: str = "intake") -> SourceFile:
    ((row, is_new),) = ledger.register_many([seen(n)], owner, 0)
    assert is_new
    return row


def claimed(n: int, owner: str) -> SourceFile:
    row = new_file(n)
    (taken,) = ledger.claim_many([row.id], owner, 60)
    return taken


def fresh(row: SourceFile) -> SourceFile:
    return SourceFile.get_by_id(row.id)


def test_registering_queues_a_file_with_its_history(database: None) -> None:
    row = new_file(1)
    assert fresh(row).state == "queued"
    assert [e for e, _ in events(row.id)] == ["detected", "stable", "stored", "queued"]


def test_a_claim_takes_a_queued_file_and_audits_its_attempt(database: None) -> None:
    row = claimed(1, "c1")
    now = fresh(row)
    assert (now.state, now.lease_owner, now.attempts) == ("processing", "c1", 1)
    assert events(row.id)[-1] == ("parsing", {"attempt": 1})


def test_ingested_sets_its_final_fields_with_its_event(database: None) -> None:
    row = claimed(1, "c1")
    job = Job.create(key="host:run", name="run")
    with audit.held():
        ledger.mark_ingested(row, "chemstation_csv", "7", job.id, role="evidence", peaks=0)
    now = fresh(row)
    assert (now.state, now.format, now.parser_version, now.job_id) == (
        "ingested", "chemstation_csv", "7", job.id)
    assert now.finished_at is not None and now.lease_owner is None and now.lease_until == 0
    # No rows of its own: the digest of nothing (record/digest.py).
    assert events(row.id)[-1] == ("ingested", {"format": "chemstation_csv",
                                               "parser_version": "7", "role": "evidence",
                                               "peaks": 0, "rows": hashlib.sha256().hexdigest()})


def test_a_rejection_keeps_its_reason_and_only_the_holder_rejects(database: None) -> None:
    row = claimed(1, "c1")
    assert not ledger.reject(row, "someone else", "bad", 3)
    assert fresh(row).state == "processing"
    assert ledger.reject(row, "c1", "no peak table", 12)
    now = fresh(row)
    assert (now.state, now.error, now.error_line) == ("rejected", "no peak table", 12)
    assert now.finished_at is not None and now.lease_owner is None
    assert events(row.id)[-1] == ("rejected", {"reason": "no peak table", "line": 12,
                                               "path": "run/S1.csv"})


def test_a_file_rejected_before_it_was_stored(database: None) -> None:
    row = ledger.register_rejected("f" * 64, "big.csv", None, "host", 10**9, 5, "too big")
    now = fresh(row)
    assert (now.state, now.error, now.raw_pack) == ("rejected", "too big", None)
    assert [e for e, _ in events(row.id)] == ["detected", "rejected"]
    again = ledger.register_rejected("f" * 64, "other.csv", None, "host", 10**9, 6, "too big")
    assert again.id == row.id and len(events(row.id)) == 2  # the same bytes: nothing new
    with audit.held():
        ledger.mark_stored(row, Location("pack-1", 0), size=10**9)
    assert (fresh(row).raw_pack, events(row.id)[-1]) == ("pack-1", ("stored", {"size": 10**9}))


def test_release_gives_the_file_back_without_an_event(database: None) -> None:
    row = claimed(1, "c1")
    before = len(events(row.id))
    ledger.release(row, "someone else", 5)  # not theirs to give back
    assert fresh(row).state == "processing"
    ledger.release(row, "c1", 5)
    now = fresh(row)
    assert (now.state, now.lease_owner) == ("queued", None)
    assert now.lease_until > time.time()  # not retried before its backoff
    assert len(events(row.id)) == before


def test_requeue_takes_only_rows_unchanged_since_read(database: None) -> None:
    a, b = claimed(1, "c1"), new_file(2)
    SourceFile.update(lease_until=0).execute()
    rows = ledger.recoverable()
    assert [r.id for r in rows] == [a.id, b.id]
    ledger.claim_many([b.id], "c2", 60)  # b changes after the read
    assert ledger.requeue(rows, "reconciler", 60) == [a.id]
    assert (fresh(a).state, fresh(a).lease_owner) == ("queued", "reconciler")
    assert fresh(b).state == "processing"


def test_reopen_queues_a_rejected_file_with_its_old_reason(database: None) -> None:
    row = claimed(1, "c1")
    ledger.reject(row, "c1", "no peak table", 12)
    row = fresh(row)
    assert ledger.reopen(row, "retry", 60, by="operator qa@lab-pc", reason="parser fixed")
    now = fresh(row)
    assert (now.state, now.error, now.attempts, now.lease_owner) == ("queued", None, 0, "retry")
    assert events(row.id)[-1] == ("retry", {"path": "run/S1.csv",
                                            "previous_error": "no peak table",
                                            "previous_line": 12, "process": "retry",
                                            "by": "operator qa@lab-pc",
                                            "reason": "parser fixed"})
    assert not ledger.reopen(row, "retry", 60)  # as read it was rejected; now it is not


def test_disposal_marks_final_rows_with_their_moves(database: None) -> None:
    row = claimed(1, "c1")
    ledger.reject(row, "c1", "bad", None)
    with audit.held():
        ledger.mark_disposed([(fresh(row), {"action": "quarantined", "path": "run/S1.csv"})])
    assert fresh(row).disposed
    assert events(row.id)[-1] == ("moved", {"action": "quarantined", "path": "run/S1.csv"})
    assert audit.verify().ok


def test_illegal_transitions_are_refused_and_change_nothing(database: None) -> None:
    queued = new_file(1)
    with pytest.raises(ledger.IllegalTransition, match="queued -> ingested"):
        ledger.mark_ingested(queued, "x", "1", Job.create(key="k", name="k").id)
    with pytest.raises(ledger.IllegalTransition, match="queued -> disposed"):
        ledger.mark_disposed([(queued, {})])
    assert (fresh(queued).state, fresh(queued).disposed) == ("queued", False)

    done = claimed(2, "c1")
    with audit.held():
        ledger.mark_ingested(done, "x", "1", None)
    with pytest.raises(ledger.IllegalTransition, match="ingested -> queued"):
        ledger.reopen(fresh(done), "retry", 60)  # only a rejected file is retried
    assert fresh(done).state == "ingested"

    # As the caller read it the file was processing; the ledger says it was given back.
    row = claimed(3, "c1")
    ledger.release(row, "c1", 0)
    with pytest.raises(ledger.IllegalTransition, match="no longer processing"):
        ledger.mark_rejected(row, "bad", None)
    assert (fresh(row).state, fresh(row).error) == ("queued", None)
    assert "rejected" not in [e for e, _ in events(row.id)]


def test_a_lost_lease_is_taken_over_and_the_first_holder_cannot_write(database: None) -> None:
    row = new_file(1)
    (first,) = ledger.claim_many([row.id], "c1", 0.05)
    time.sleep(0.1)  # the lease runs out (a stalled consumer)
    (second,) = ledger.claim_many([row.id], "c2", 60)
    assert second.attempts == 2
    assert ledger.owned([row.id], "c1") == set()
    assert ledger.owned([row.id], "c2") == {row.id}
    assert not ledger.reject(first, "c1", "too late", None)
    ledger.release(first, "c1", 0)
    now = fresh(row)
    assert (now.state, now.lease_owner) == ("processing", "c2")
    assert ledger.claim_many([row.id], "c3", 60) == []  # c2 is alive and its lease runs


def test_two_consumers_claiming_the_same_files_get_each_once(database: None) -> None:
    ids = [r.id for r, _ in ledger.register_many([seen(n) for n in range(200)], "intake", 0)]
    start = threading.Barrier(2)
    got: dict[str, list[int]] = {}

    def consumer(name: str) -> None:
        owner = f"{ledger.HOST}:{os.getpid()}:{name}"  # alive: this process
        start.wait()
        mine: list[int] = []
        for i in range(0, len(ids), 10):
            mine += [r.id for r in ledger.claim_many(ids[i:i + 10], owner, 60)]
        got[name] = mine
        SourceFile._meta.database.close()  # this thread's own connection

    threads = [threading.Thread(target=consumer, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(got["a"] + got["b"]) == ids  # every file taken, none twice
    assert AuditEvent.select().where(AuditEvent.event == "parsing").count() == len(ids)
    assert all(r.attempts == 1 for r in SourceFile.select())


def dead_pid() -> int:
    """A process id no process has on this host."""
    for pid in range(4_194_000, 1_000, -997):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    pytest.skip("no unused process id found")


def test_a_dead_holder_on_this_host_frees_its_files(database: None) -> None:
    gone = f"{ledger.HOST}:{dead_pid()}:consumer"
    assert ledger.holder_is_dead(gone)
    assert not ledger.holder_is_dead(ledger.owner_id("me"))
    assert not ledger.holder_is_dead(f"{ledger.HOST}:{os.getppid()}:x")  # alive
    assert not ledger.holder_is_dead("elsewhere:42:x")  # another host, no heartbeat: alive
    ProcessBeat.create(owner="elsewhere:42", role="run", node="n", beat_at=0, started_at=0)
    assert ledger.holder_is_dead("elsewhere:42:x")  # its heartbeat stopped

    row = new_file(1)
    ledger.claim_many([row.id], gone, 600)
    assert ledger.recoverable() and ledger.recoverable()[0].id == row.id
    (taken,) = ledger.claim_many([row.id], "c2", 60)  # its lease still runs, its holder is dead
    assert taken.lease_owner == "c2"


def test_duplicates_register_one_row_and_audit_each_other_copy(database: None) -> None:
    copy = ledger.Seen(path="other/S1.csv", size=11, mtime_ns=1001, sha256=f"{1:064x}",
                       detected_at=1.0, stable_at=2.0)
    out = ledger.register_many([seen(1), seen(1), copy, seen(2)], "intake", 60)
    assert [is_new for _, is_new in out] == [True, False, False, True]
    assert len({row.id for row, _ in out[:3]}) == 1
    assert SourceFile.select().count() == 2
    first = out[0][0].id
    assert [d for e, d in events(first) if e == "duplicate"] == [
        {"path": "other/S1.csv", "first_path": "run/S1.csv", "state": "queued"}]

    (again, is_new), = ledger.register_many([seen(1)], "intake", 60)  # seen again: a re-read
    assert (again.id, is_new) == (first, False)
    assert [e for e, _ in events(first)].count("duplicate") == 1
    assert audit.verify().ok


def test_a_file_handed_back_waits_its_retry_time_before_the_reconciler_takes_it(
        database: None) -> None:
    """release(retry_in) leaves no holder; that is not a dead holder, so the reconciler waits
    for the retry time (a .D folder's CSV set waiting for its Report.TXT) instead of spinning."""
    row = claimed(40, "consumer-a")
    ledger.release(row, "consumer-a", retry_in=60)
    assert fresh(row).state == "queued"
    assert row.id not in {r.id for r in ledger.recoverable()}
    assert row.id in {r.id for r in ledger.recoverable(now=time.time() + 61)}


def test_each_event_carries_its_utc_time_to_the_microsecond(database: None) -> None:
    before = datetime.now(UTC)
    with audit.database.atomic():
        audit.record_many([("note", None, None, {"n": n}) for n in range(3)])
    after = datetime.now(UTC)
    stamps = [e.at for e in AuditEvent.select().where(AuditEvent.event == "note")
              .order_by(AuditEvent.seq)]
    assert len(stamps) == 3 and stamps == sorted(stamps)
    for at in stamps:
        # the same text as datetime.isoformat gives: what verify and the pages read back
        moment = datetime.fromisoformat(at)
        assert moment.isoformat(timespec="microseconds") == at
        assert moment.utcoffset() == timedelta(0) and before <= moment <= after
    assert audit.verify().ok
    last = AuditEvent.select().order_by(AuditEvent.seq.desc()).get()
    body = audit.canonical([last.prev_hash, last.seq, last.at, last.host, last.pid, last.version,
                            last.event, last.sha256, last.source_file_id, last.details])
    assert last.hash == hmac.digest(audit._key(), body.encode(), "sha256").hex()


def test_a_claim_reads_its_rows_as_the_orm_does(database: None) -> None:
    """``claim_many`` builds its rows from plain SQL: the same values, types and order as
    ``SourceFile.select()``, nothing dirty, and none in a final state."""
    rows = [new_file(n) for n in range(1, 7)]
    job = Job.create(key="vm:run", name="run")
    SourceFile.update(path_bytes=b"run/S\xff.csv", previous=rows[0].id, job=job.id,
                      finished_at=datetime(2026, 1, 2, 3, 4, 5, 678901), disposed=True,
                      raw_pack="packs/2026-01-02/a.pack", raw_offset=4096, error="e",
                      error_line=7).where(SourceFile.id == rows[1].id).execute()
    SourceFile.update(state="processing", lease_owner="c1", lease_until=time.time() + 60,
                      attempts=3).where(SourceFile.id == rows[2].id).execute()
    SourceFile.update(state="ingested").where(SourceFile.id == rows[3].id).execute()
    ids = [r.id for r in rows][::-1]
    expected = list(SourceFile.select().where(SourceFile.id.in_(ids),
                                              SourceFile.state.not_in(("ingested", "rejected",
                                                                       "context"))))
    found = ledger._unfinished(ids)
    assert [r.__data__ for r in found] == [r.__data__ for r in expected]
    assert len(found) == 5 and rows[3].id not in {r.id for r in found}
    for mine, theirs in zip(found, expected, strict=True):
        assert not mine._dirty and not mine.__rel__
        for name in mine.__data__:
            assert type(getattr(mine, name)) is type(getattr(theirs, name)), name
        assert mine.job_id == theirs.job_id and mine.previous_id == theirs.previous_id
    assert found[1].job.key == "vm:run" and found[1].first_seen.tzinfo is None
