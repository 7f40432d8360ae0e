"""``run`` with its consumers in child processes (``consumer_processes``): each file still once,
a killed child started again, a graceful stop that leaves nothing half-written, no orphan when
the parent is killed, and the children's state in /status and /readyz. Real processes only."""

from __future__ import annotations

import os
import random
import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from support.drops import Drop, assert_exactly_once, drop_all, plan, settle
from support.workers import WorkerProcess, wait_for, write_config

from worker.record import db, ledger
from worker.record.models import AuditEvent, Injection, SourceFile
from worker.runtime import child
from worker.settings import Settings


def consumers(w: WorkerProcess) -> dict[str, Any]:
    return w.status()["consumer_processes"]


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc on this platform
        return ledger.pid_alive(pid)
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def final_pids(w: WorkerProcess) -> set[int]:
    """The processes that wrote the files' ingested/rejected events."""
    database = db.open_database(Settings(inbox=w.inbox, data_dir=w.data), migrate=False)
    try:
        return {e.pid for e in AuditEvent.select(AuditEvent.pid)
                .where(AuditEvent.event.in_(["ingested", "rejected"]))}
    finally:
        database.close()


@pytest.fixture
def two(tmp_path: Path) -> Any:
    w = WorkerProcess(tmp_path, "--config", str(write_config(tmp_path, consumer_processes=2)))
    yield w
    if w.proc is not None and w.proc.poll() is None:
        w.stop(signal.SIGKILL)


def test_two_consumer_processes_ingest_a_burst_exactly_once(two: WorkerProcess) -> None:
    two.start()
    wait_for(lambda: two.get("/readyz") == (200, {"status": "ready", "failed": {}}),
             timeout=30, what="ready")
    children = consumers(two)
    assert (children["processes"], children["alive"], children["ready"],
            children["restarts"]) == (2, 2, 2, 0)
    assert two.proc is not None and two.proc.pid not in children["pids"]

    rng = random.Random(11)
    drops = plan(200, rng, tag="p")
    drop_all(two, drops, rng)
    settle(two, drops)
    assert consumers(two)["pids"] == children["pids"]  # nobody died meanwhile
    assert two.stop() == 0
    assert_exactly_once(two, drops)
    # Parsing and writing happened in the children, not beside the watcher.
    assert final_pids(two) <= set(children["pids"])
    # Each registered file left the inbox once, by whichever process got to it first (the
    # watcher's disposal poll and the consumers race for it).
    assert moves_per_file(two) == {1}


def moves_per_file(w: WorkerProcess) -> set[int]:
    database = db.open_database(Settings(inbox=w.inbox, data_dir=w.data), migrate=False)
    try:
        moved = [e.source_file_id for e in AuditEvent.select(AuditEvent.source_file_id)
                 .where(AuditEvent.event == "moved",
                        ~AuditEvent.details.contains('"duplicate'))]
        return {moved.count(f.id) for f in SourceFile.select(SourceFile.id)}
    finally:
        database.close()


def test_killed_consumer_process_is_started_again_and_no_file_is_lost(
        two: WorkerProcess) -> None:
    two.start()
    victim, _ = wait_for(lambda: (c := consumers(two))["ready"] == 2 and c["pids"],
                             timeout=30, what="two consumer processes")

    # Idle: the gap until the restart is seen by /readyz, which names it.
    os.kill(victim, signal.SIGKILL)
    _, body = wait_for(lambda: (r := two.get("/readyz"))[0] == 503 and r, timeout=10,
                       what="/readyz to notice the dead consumer")
    assert body["failed"] == {"consumers": "1 of 2 consumer processes running and ready"}
    wait_for(lambda: consumers(two)["ready"] == 2, timeout=30, what="the consumer restarted")

    # Under load: kill one mid-burst; its leased files are taken again once it is dead.
    rng = random.Random(12)
    drops = plan(300, rng, tag="k")
    drop_all(two, drops[:150], rng)
    wait_for(lambda: two.status()["files"]["ingested"] > 0, timeout=60, what="a first ingest")
    busy = consumers(two)["pids"][0]
    os.kill(busy, signal.SIGKILL)
    drop_all(two, drops[150:], rng)
    settle(two, drops)
    after = wait_for(lambda: (c := consumers(two))["ready"] == 2 and c, timeout=30,
                     what="both consumers running")
    assert after["restarts"] == 2
    with urllib.request.urlopen(f"http://127.0.0.1:{two.port}/metrics", timeout=10) as r:
        assert "accu_ingest_consumer_restarts_total 2.0" in r.read().decode().splitlines()
    assert victim not in after["pids"] and busy not in after["pids"]
    assert two.get("/readyz")[0] == 200
    assert two.stop() == 0
    assert_exactly_once(two, drops)
    log = two.log.read_text()
    assert f"(pid {victim}) ended: killed by SIGKILL; starting it again" in log
    assert f"(pid {busy}) ended: killed by SIGKILL; starting it again" in log


def _busy(w: WorkerProcess, seed: int, files: int) -> tuple[list[int], list[Drop]]:
    """Start ``w``, drop ``files`` files, and return (consumer pids, drops) once the first is
    ingested: the consumers are then mid-burst."""
    w.start()
    pids = wait_for(lambda: (c := consumers(w))["ready"] == 2 and c["pids"], timeout=30,
                    what="two consumer processes")
    rng = random.Random(seed)
    drops = plan(files, rng, tag=f"b{seed}")
    drop_all(w, drops, rng)
    wait_for(lambda: w.status()["files"]["ingested"] > 0, timeout=60, what="a first ingest")
    return pids, drops


def test_sigterm_stops_every_process_and_leaves_nothing_half_written(two: WorkerProcess,
                                                                     open_db) -> None:
    pids, drops = _busy(two, seed=13, files=300)
    assert two.stop(signal.SIGTERM) == 0
    assert not [pid for pid in pids if running(pid)]
    assert "consumer 1: stop asked; finishing the files in flight" in two.log.read_text()

    # All or nothing per file: a file has its rows exactly when it is ingested.
    open_db(two.data)
    injections = {i.source_file_id for i in Injection.select(Injection.source_file)}
    ingested = {r.id for r in SourceFile.select().where(SourceFile.state == "ingested")}
    assert injections == ingested

    two.start()  # the rest is taken up again, each file once
    settle(two, drops)
    assert two.stop() == 0
    assert_exactly_once(two, drops)


def test_consumer_processes_exit_when_the_parent_is_killed(two: WorkerProcess) -> None:
    pids, drops = _busy(two, seed=14, files=200)
    assert two.stop(signal.SIGKILL) == -signal.SIGKILL
    wait_for(lambda: not [pid for pid in pids if running(pid)], timeout=15,
             what="the orphaned consumers to exit")
    assert "the parent process is gone; exiting now" in two.log.read_text()

    two.start()  # their leases belong to dead processes: the files are taken again
    settle(two, drops)
    assert two.stop() == 0
    assert_exactly_once(two, drops)


def test_zero_consumer_processes_consume_in_the_run_process(tmp_path: Path) -> None:
    w = WorkerProcess(tmp_path, "--config", str(write_config(tmp_path)),
                      "--consumer-processes", "0")
    try:
        w.start()
        assert w.status()["consumer_processes"] is None
        wait_for(lambda: w.get("/readyz")[0] == 200, timeout=30, what="ready")
        assert "consumers" not in w.get("/readyz")[1]["failed"]
        rng = random.Random(15)
        drops = plan(40, rng, tag="z")
        drop_all(w, drops, rng)
        settle(w, drops)
        assert w.proc is not None
        pid = w.proc.pid
        assert w.stop() == 0
    finally:
        if w.proc is not None:
            w.stop(signal.SIGKILL)
    assert_exactly_once(w, drops)
    assert final_pids(w) == {pid}


def test_a_child_gets_exactly_the_parents_settings(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "accu-ingest.toml"
    config.write_text('workers = 3\nafter_ingest = "keep"\n'
                      '[methods.default]\nlevel_corrections = {"12" = 12.5}\n'
                      'reason = "CoA 4711: level 12 is 12.5"\n'
                      'concentration_unit = "mg/L"\n'
                      '[tables.lims]\nfiles = ["*.csv"]\ndecimal_comma = true\n'
                      '[tables.lims.columns]\nrt = "RT"\narea = "Area"\n'
                      '[encodings]\n"*.txt" = "cp1250"\n', encoding="utf-8")
    from worker.settings import load
    parent = load(config, queue_url="redis://:pa55@127.0.0.1:6379/0",
                  database_url="postgresql://u:pw@127.0.0.1/test", queue_secret="s3cret",
                  port=18008, node="lab-pc-7")
    # The child's own environment must not change what the parent decided.
    monkeypatch.setenv("ACCU_INGEST_WORKERS", "9")
    monkeypatch.setenv("ACCU_INGEST_QUEUE_SECRET", "other")
    got, index, level = child.received(child.handover(parent, 2, 10))
    assert got.model_dump() == parent.model_dump()  # SecretStr compares by its value
    assert (index, level) == (2, 10)
    assert isinstance(got.queue_secret, SecretStr)
    assert got.queue_secret.get_secret_value() == "s3cret"
    assert got.queue == "redis://:pa55@127.0.0.1:6379/0" and got.workers == 3
