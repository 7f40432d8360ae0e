"""The minimal durable floor: the least a durable file costs on this machine, whatever our schema.

Written with plain ``sqlite3`` and nothing of the worker's, so it measures the machine (disk,
fsync, SQLite), not our choices. Per batch of BATCH files: read each file's bytes, SHA-256,
append them to one new pack file fsync'd (with its folder), then ONE SQLite transaction (WAL,
``synchronous=FULL``) inserting per file a ledger row, an injection, PEAKS peaks, RESULTS
results each with a JSON trace, and EVENTS hash-chained (HMAC-SHA256) audit events. Parsing is
left out: the peaks' values are taken from the bytes' digest, so each row is distinct.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

BATCH = 256
PEAKS = 6
RESULTS = 3
EVENTS = 8
KEY = b"durable floor key"
STEPS = ("detected", "stable", "stored", "queued", "parsing", "ingested", "moved", "computed")
assert len(STEPS) == EVENTS

SCHEMA = (
    "CREATE TABLE ledger (id INTEGER PRIMARY KEY, sha256 TEXT UNIQUE NOT NULL, path TEXT NOT "
    "NULL, size INTEGER NOT NULL, state TEXT NOT NULL, pack TEXT NOT NULL, offset INTEGER NOT "
    "NULL, finished_at TEXT NOT NULL)",
    "CREATE TABLE injection (id INTEGER PRIMARY KEY, ledger_id INTEGER NOT NULL REFERENCES "
    "ledger(id), sample TEXT NOT NULL, number INTEGER NOT NULL)",
    "CREATE INDEX injection_ledger ON injection(ledger_id)",
    "CREATE TABLE peak (id INTEGER PRIMARY KEY, injection_id INTEGER NOT NULL REFERENCES "
    "injection(id), number INTEGER NOT NULL, rt_min REAL, area REAL, area_pct REAL, height "
    "REAL)",
    "CREATE INDEX peak_injection ON peak(injection_id)",
    "CREATE TABLE result (id INTEGER PRIMARY KEY, injection_id INTEGER NOT NULL REFERENCES "
    "injection(id), kind TEXT NOT NULL, value REAL, unit TEXT, trace TEXT NOT NULL)",
    "CREATE INDEX result_injection ON result(injection_id)",
    "CREATE TABLE audit (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, event TEXT NOT NULL, "
    "sha256 TEXT, ledger_id INTEGER, details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT "
    "NOT NULL)",
    "CREATE INDEX audit_ledger ON audit(ledger_id)",
)


def files_per_s(paths: Sequence[Path], folder: Path) -> float:
    """Files/s storing ``paths`` durably into a fresh database and pack folder under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    packs = folder / "packs"
    packs.mkdir()
    conn = sqlite3.connect(folder / "floor.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        for statement in SCHEMA:
            conn.execute(statement)
        started = time.perf_counter()
        chain = (0, "0" * 64)
        for start in range(0, len(paths), BATCH):
            chain = _batch(conn, packs, paths[start:start + BATCH], start, chain)
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    return len(paths) / elapsed


def _batch(conn: sqlite3.Connection, packs: Path, paths: Sequence[Path], first: int,
           chain: tuple[int, str]) -> tuple[int, str]:
    blobs = [(p, p.read_bytes()) for p in paths]
    digests = [hashlib.sha256(data).hexdigest() for _, data in blobs]
    pack = packs / f"{first:08d}.pack"
    offsets = []
    with open(pack, "xb") as fh:
        offset = 0
        for (_, data), sha in zip(blobs, digests, strict=True):
            header = b"raw %s %d\n" % (sha.encode(), len(data))
            fh.write(header)
            fh.write(data)
            offsets.append(offset)
            offset += len(header) + len(data)
        fh.flush()
        os.fsync(fh.fileno())
    fd = os.open(packs, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    seq, prev = chain
    ledger, injections, peaks, results, events = [], [], [], [], []
    for i, ((path, data), sha, offset) in enumerate(zip(blobs, digests, offsets, strict=True)):
        lid = first + i + 1
        at = datetime.now(UTC).isoformat(timespec="microseconds")
        ledger.append((lid, sha, str(path), len(data), "ingested", pack.name, offset, at))
        injections.append((lid, lid, path.stem, 1))
        values = [int(sha[k:k + 4], 16) for k in range(0, 4 * PEAKS, 4)]
        peaks += [(lid, n + 1, 1.0 + n, float(v), 100.0 * v / sum(values), v / 3.0)
                  for n, v in enumerate(values)]
        for kind in ("purity", "identity", "quantity")[:RESULTS]:
            trace = json.dumps({"inputs": {"peaks": [p[1] for p in peaks[-PEAKS:]],
                                           "total_area": sum(values)},
                                "steps": [{"step": "main peak", "rt_min": 1.0,
                                           "area": float(max(values))},
                                          {"step": kind, "value": max(values) / sum(values)}],
                                "version": "floor-1"}, sort_keys=True)
            results.append((lid, kind, max(values) / sum(values), "%", trace))
        for step in STEPS:
            seq += 1
            details = json.dumps({"path": str(path), "size": len(data)}, sort_keys=True)
            body = json.dumps([prev, seq, at, step, sha, lid, details]).encode()
            digest = hmac.digest(KEY, body, "sha256").hex()
            events.append((seq, at, step, sha, lid, details, prev, digest))
            prev = digest
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?)", ledger)
    conn.executemany("INSERT INTO injection VALUES (?, ?, ?, ?)", injections)
    conn.executemany("INSERT INTO peak (injection_id, number, rt_min, area, area_pct, height) "
                     "VALUES (?, ?, ?, ?, ?, ?)", peaks)
    conn.executemany("INSERT INTO result (injection_id, kind, value, unit, trace) "
                     "VALUES (?, ?, ?, ?, ?)", results)
    conn.executemany("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)", events)
    conn.execute("COMMIT")
    return seq, prev
