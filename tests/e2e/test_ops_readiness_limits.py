"""Readiness and the status endpoint hold the line on the embedded installation: a restarted
``run`` takes a dead scheduler's lease at once, /readyz answers within its own timeout while
another process holds SQLite's write lock, and the HTTP server bounds what a client can take
(time, threads, header bytes)."""

from __future__ import annotations

import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.reports import random_peaks, report
from support.workers import WorkerProcess, wait_for, write_config

from worker.record.models import Lease
from worker.runtime import http
from worker.runtime.health import Probe
from worker.settings import Settings


def _reports(n: int, seed: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    return {f"T{seed}_{i:03d}_Report.csv": report(random_peaks(rng)).encode() for i in range(n)}


def test_a_run_restarted_after_a_crash_takes_the_dead_schedulers_lease_at_once(
        tmp_path: Path, open_db: object) -> None:
    # Three reconcile intervals (the scheduler lease) are 30 s: a restart that waited them out
    # would leave the files the crash cut short for that long.
    config = write_config(tmp_path, reconcile_seconds=10.0, lease_seconds=120.0)
    worker = WorkerProcess(tmp_path, "--config", str(config))
    try:
        worker.start()
        files = _reports(120, seed=31)
        for name, data in files.items():
            (worker.inbox / name).write_bytes(data)
        wait_for(lambda: worker.status()["files"]["processing"] > 0, timeout=30, interval=0.02,
                 what="files in flight")
        worker.stop(signal.SIGKILL)  # its consumer processes exit with it (their pipe closes)
        worker.start()
        assert worker.proc is not None
        open_db(worker.data)  # type: ignore[operator]
        new_pid = worker.proc.pid

        def scheduler_pid() -> int | None:
            lease = Lease.get_or_none(Lease.name == "scheduler")
            return int(lease.owner.split(":")[1]) if lease else None

        wait_for(lambda: scheduler_pid() == new_pid, timeout=8,
                 what="the restarted run to hold the scheduler lease")
        worker.wait_final(len(files), timeout=25)
    finally:
        if worker.proc is not None:
            worker.stop(signal.SIGKILL)


HOLD_WRITE_LOCK = """
import sys, time
from worker.record import db
from worker.record.models import Lease, database
from worker.settings import Settings
db.open_database(Settings(data_dir=sys.argv[1]), migrate=False)
with database.atomic():  # our own writers' file lock, then SQLite's: as a long writer holds it
    Lease.insert(name="held-by-test", owner="test", until=0).execute()
    print("held", flush=True)
    time.sleep(60)
"""


def test_readyz_answers_within_its_timeout_while_another_process_holds_the_write_lock(
        worker: WorkerProcess) -> None:
    worker.start()
    wait_for(lambda: worker.get("/readyz")[0] == 200, timeout=20, what="ready")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_WRITE_LOCK, str(worker.data)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        code, body = worker.get("/readyz")  # urllib gives up after 5 s
        assert code == 503
        assert "not writable" in body["failed"]["database"]
    finally:
        holder.kill()
        holder.wait()
    wait_for(lambda: worker.get("/readyz")[0] == 200, timeout=20, what="ready again")


def test_a_write_lock_held_past_the_busy_timeout_names_the_stuck_loops_then_recovers(
        worker: WorkerProcess) -> None:
    worker.start()
    wait_for(lambda: worker.get("/readyz")[0] == 200, timeout=20, what="ready")
    # A copy tool or a stuck writer holds SQLite's lock longer than the 30 s busy timeout.
    holder = sqlite3.connect(worker.data / "accu-ingest.db", timeout=0, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        def stuck() -> str | None:
            try:
                code, body = worker.get("/readyz")
            except OSError:  # slow on a loaded machine: the test above checks its time
                return None
            return body["failed"].get("loops") if code == 503 else None

        why = wait_for(stuck, timeout=60, interval=1.0, what="/readyz naming stuck loops")
        assert "locked" in why, why
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    wait_for(lambda: worker.get("/readyz")[0] == 200, timeout=30, what="ready again")


# --- the HTTP server's bounds -------------------------------------------------------------------
@pytest.fixture
def server(tmp_path: Path, open_db: object,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int]]:
    """The status endpoint on a free port, with two handler threads and a 1.5 s request
    deadline so the bounds show quickly."""
    monkeypatch.setattr(http, "MAX_HANDLERS", 2)
    monkeypatch.setattr(http, "REQUEST_SECONDS", 1.5)
    open_db(tmp_path / "data")  # type: ignore[operator]
    settings = Settings(data_dir=tmp_path / "data", inbox=tmp_path / "inbox")
    srv = http.StatusServer(Probe(settings=settings), "127.0.0.1", 0)
    srv.start()
    yield srv.address
    srv.stop()


def _ask(address: tuple[str, int], request: bytes) -> bytes:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(request)
        return _read_all(sock)


def _read_all(sock: socket.socket) -> bytes:
    got = b""
    while chunk := sock.recv(65536):
        got += chunk
    return got


def test_headers_past_the_limit_get_431(server: tuple[str, int]) -> None:
    ok = _ask(server, b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
    assert ok.startswith(b"HTTP/1.0 200")
    long_values = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(40))  # 40 KB
    assert _ask(server, b"GET /livez HTTP/1.1\r\n" + long_values + b"\r\n").startswith(
        b"HTTP/1.0 431")
    many = b"".join(b"X-N-%d: 1\r\n" % i for i in range(80))
    assert _ask(server, b"GET /livez HTTP/1.1\r\n" + many + b"\r\n").startswith(b"HTTP/1.0 431")


def test_a_client_sending_a_byte_at_a_time_is_cut_off(server: tuple[str, int]) -> None:
    with socket.create_connection(server, timeout=10) as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\nX-Slow: ")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 6:
            try:
                sock.sendall(b"a")
                sock.settimeout(0.3)
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:  # reset: cut off too
                closed = True
                break
        assert closed, "the server kept a dripping request open"


def test_connections_past_the_thread_cap_are_answered_503_at_once(
        server: tuple[str, int]) -> None:
    idle = [socket.create_connection(server, timeout=5) for _ in range(http.MAX_HANDLERS)]
    try:
        time.sleep(0.2)  # each holds a handler thread, waiting for its request line
        busy = _ask(server, b"GET /livez HTTP/1.1\r\n\r\n")
        assert busy.startswith(b"HTTP/1.0 503")
        assert b"busy" in busy
    finally:
        for sock in idle:
            sock.close()
    wait_for(lambda: _ask(server, b"GET /livez HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.0 200"),
             timeout=10, what="a thread free again")


def test_head_is_answered_on_every_endpoint_with_the_get_headers_and_no_body(
        server: tuple[str, int]) -> None:
    """Uptime checks and load balancers probe with HEAD; it was answered 501."""
    for path in http.ENDPOINTS:
        get = _ask(server, f"GET {path} HTTP/1.0\r\n\r\n".encode())
        head = _ask(server, f"HEAD {path} HTTP/1.0\r\n\r\n".encode())
        get_head, _, body = get.partition(b"\r\n\r\n")
        assert head.endswith(b"\r\n\r\n"), head  # nothing after the headers
        assert head.split(b"\r\n")[0] == get_head.split(b"\r\n")[0], path
        assert b"Content-Length: " in head and body
