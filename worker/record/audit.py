"""The append-only, hash-chained audit trail, keyed and anchored outside the database.

Each event's hash covers its own fields and the previous event's hash, so editing, inserting or
deleting any event breaks the chain at that point, and ``verify`` names the first broken event.
Events are appended inside the caller's transaction: a step and its audit commit together.

A plain hash chain only proves consistency: whoever can write the database can rewrite an event
and recompute every later hash, or cut the end off. So the hash is an HMAC-SHA256 with a key
that lives outside the database (``audit_key`` or the key file), and the head (sequence, hash)
is checkpointed to an append-only anchor file and the log. Events written before a database
first met its key stay plain SHA-256; the ``chain_keyed`` event (the key's fingerprint, never
the key) marks where keyed hashes begin, and is itself keyed, so later events cannot be passed
off as plain ones.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

from worker import __version__
from worker.record import jsontext, keys, sql
from worker.record.models import AuditEvent, database
from worker.settings import Settings, SettingsError

log = logging.getLogger(__name__)

GENESIS = "0" * 64
HOST = socket.gethostname()
# Serialises appends on PostgreSQL, where concurrent consumers would otherwise fork the chain.
PG_LOCK_KEY = 0x61636375  # "accu"


# Every event is encoded twice (its details, then the body its hash covers).
_CANONICAL = jsontext.encoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              default=str)


def canonical(value: Any) -> str:
    return _CANONICAL(value)


_quoted = encode_basestring  # a string as canonical encodes it (ensure_ascii=False)


def _digest(prev_hash: str, seq: int, at: str, host: str, pid: int, version: str, event: str,
            sha256: str | None, source_file_id: int | None, details: str,
            key: bytes | None) -> str:
    """HMAC-SHA256 with the key; plain SHA-256 (events from before the key) without."""
    return _hashed(canonical([prev_hash, seq, at, host, pid, version, event, sha256,
                              source_file_id, details]), key)


def _hashed(body: str, key: bytes | None) -> str:
    if key is None:
        return hashlib.sha256(body.encode("utf-8")).hexdigest()
    mac = _keyed(key).copy()
    mac.update(body.encode("utf-8"))
    return mac.hexdigest()


def _body(prev_hash: str, seq: int, at: str, writer: str, event: str, sha256: str | None,
          source_file_id: int | None, details: str) -> str:
    """``canonical`` of the list ``_digest`` hashes, written out: an append knows the type of
    each field (``writer`` is ``_writer``'s), so only the strings need encoding; the same text,
    and the details' text is encoded once, not again inside the list."""
    return (f"[{_quoted(prev_hash)},{seq},{_quoted(at)},{writer},{_quoted(event)},"
            f"{'null' if sha256 is None else _quoted(sha256)},"
            f"{'null' if source_file_id is None else int(source_file_id)},{_quoted(details)}]")


def _writer(host: str, pid: int, version: str) -> str:
    """The host, pid and version fields of ``_body``: the same for every event of an append."""
    return f"{_quoted(host)},{int(pid)},{_quoted(version)}"


@functools.lru_cache(maxsize=4)
def _keyed(key: bytes) -> hmac.HMAC:
    """An HMAC with the key already absorbed: a copy of it costs half a fresh one's set-up,
    and every event of every file is hashed."""
    return hmac.new(key, digestmod="sha256")


_minute: tuple[int, str] = (-1, "")


def _utc_now() -> str:
    """``datetime.now(UTC).isoformat(timespec="microseconds")``, the date and time up to the
    minute formatted once a minute: it is read for every event."""
    global _minute
    micros = time.time_ns() // 1000
    seconds, fraction = divmod(micros, 1_000_000)
    minute, second = divmod(seconds, 60)
    known = _minute  # one read: another thread may replace it meanwhile, with the same text
    if known[0] != minute:
        known = _minute = (minute, datetime.fromtimestamp(minute * 60, UTC)
                           .strftime("%Y-%m-%dT%H:%M:"))
    return f"{known[1]}{second:02d}.{fraction:06d}+00:00"


KEYED = "chain_keyed"


class KeyMismatch(SettingsError):
    """This process's key is not the one the trail is keyed with; appending would break it."""


def fingerprint(key: bytes) -> str:
    """Names a key in the trail and in messages without giving it away."""
    return hashlib.sha256(b"accu-ingest audit key\n" + key).hexdigest()[:16]


@dataclass
class _Chain:
    """The key of the database this process has open (db.open_database attaches it)."""

    settings: Settings | None = None
    key: bytes | None = None
    keyed: bool = False  # the trail's committed chain_keyed event names our key


_chain = _Chain()
_chain_lock = threading.Lock()


def attach(settings: Settings) -> None:
    """The database named by ``settings`` is open now; its key is read when first needed."""
    global _chain
    _chain = _Chain(settings)


def key_source(settings: Settings) -> str:
    return "audit_key" if settings.audit_key else f"key file {settings.audit_key_path}"


def load_key(settings: Settings, create: bool) -> bytes | None:
    """``audit_key``, else the key file (created when absent and ``create``; else None)."""
    if settings.audit_key is not None:
        return settings.audit_key.get_secret_value().encode("utf-8")
    path = settings.audit_key_path
    try:
        if create:
            return keys.load_or_create(path)
        return keys.load(path) if path.exists() else None
    except (keys.KeyFileError, OSError) as exc:
        raise SettingsError(f"audit key: {exc}") from None


def _key() -> bytes:
    chain = _chain
    if chain.key is None:
        if chain.settings is None:
            raise RuntimeError("the audit trail is used before db.open_database")
        with _chain_lock:
            if chain.key is None:
                chain.key = load_key(chain.settings, create=True)
    assert chain.key is not None
    return chain.key


def _keying(key: bytes) -> list[Event]:
    """The ``chain_keyed`` event to append first when the trail has none; raises KeyMismatch
    when it has one for another key. Runs under the chain's lock."""
    found = sql.rows(_KEYED_SQL, (KEYED,))
    mine = fingerprint(key)
    if not found:
        return [(KEYED, None, None, {"fingerprint": mine, "algorithm": "HMAC-SHA256"})]
    theirs = json.loads(found[0][0]).get("fingerprint")
    if theirs != mine:
        assert _chain.settings is not None
        raise KeyMismatch(
            f"the audit trail is keyed with key fingerprint {theirs}, but this process's "
            f"{key_source(_chain.settings)} has fingerprint {mine}: every process that writes "
            "to this database needs the same key (copy the key file, or set audit_key, the "
            "same on every machine)")
    _chain.keyed = True  # committed: it was read, not just written
    return []


def lock_chain() -> None:
    """Hold the chain's lock until the current transaction ends (PostgreSQL; a no-op elsewhere).

    Concurrent consumers would otherwise read the same head and fork the chain. A transaction
    that locks rows (a job, a sample) and only then waits here can deadlock with one that holds
    this lock and waits for those rows, so a writer that will lock rows and append events calls
    this first: every writer then takes the locks in the same order. SQLite needs nothing: its
    write transactions begin IMMEDIATE and so are serial already.
    """
    db = database.obj
    if db.in_transaction() and type(db).__name__.startswith("Postgres"):
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK_KEY,))


def record(event: str, sha256: str | None = None, source_file_id: int | None = None,
           **details: Any) -> None:
    """Append one event. Call inside a write transaction so it commits with the step it
    records."""
    record_many([(event, sha256, source_file_id, details)])


Event = tuple[str, "str | None", "int | None", dict[str, Any]]  # event, sha256, file id, details
_held = threading.local()


@contextlib.contextmanager
def held() -> Iterator[list[Event]]:
    """Hold back the events recorded inside, then append them together, in order, on the way
    out (inside the caller's transaction, so they still commit with their steps).

    An ingest chunk records a few events per file; appended one by one, each costs a read of
    the chain's head and an INSERT while the database's write lock is held. The list is the
    caller's to trim: a savepoint that rolls back a file's rows drops that file's events with
    them. On an exception nothing is appended (the transaction is rolling back).
    """
    events: list[Event] | None = getattr(_held, "events", None)
    if events is not None:  # already held further out: that one appends them
        yield events
        return
    events = _held.events = []
    try:
        yield events
    finally:
        _held.events = None
    _append(events)


def record_many(events: list[Event]) -> None:
    """Append events in order, each linked to the one before (or hold them: see ``held``)."""
    waiting: list[Event] | None = getattr(_held, "events", None)
    if waiting is not None:
        waiting.extend(events)
    else:
        _append(events)


def _append(events: list[Event], keying: bool = False) -> None:
    """One read of the chain's head and one multi-row INSERT, in plain SQL: this runs for every
    step of every file, and building the same queries through the ORM each time (or two
    statements per event) cost more than everything else about the events.

    Until this process has seen the trail keyed with its key, it also looks for the
    ``chain_keyed`` event (appending it first when there is none); after that, nothing more.
    """
    if not events and not keying:
        return
    key = _key()
    lock_chain()
    if not _chain.keyed:
        events = _keying(key) + events
    if not events:
        return
    head = sql.rows(_HEAD_SQL)
    seq, prev = head[0] if head else (0, GENESIS)
    pid = os.getpid()
    writer = _writer(HOST, pid, __version__)
    rows: list[tuple[Any, ...]] = []
    for event, sha256, source_file_id, details in events:
        seq += 1
        at = _utc_now()
        text = canonical(details)
        digest = _hashed(_body(prev, seq, at, writer, event, sha256, source_file_id, text), key)
        rows.append((seq, at, HOST, pid, __version__, event, sha256, source_file_id, text, prev,
                     digest))
        prev = digest
    sql.insert(AuditEvent, _COLUMNS, rows)


_HEAD_SQL = f"SELECT seq, hash FROM {sql.table(AuditEvent)} ORDER BY seq DESC LIMIT 1"
_KEYED_SQL = (f"SELECT details FROM {sql.table(AuditEvent)} WHERE event = ? "
              "ORDER BY seq LIMIT 1")
_COLUMNS = ("seq", "at", "host", "pid", "version", "event", "sha256", "source_file_id",
            "details", "prev_hash", "hash")


def open_chain() -> str:
    """At a process's start: read (or create) the key, refuse a key the trail is not keyed
    with (KeyMismatch, before any file is touched), and key the trail now if it is not yet.
    Returns the key's fingerprint."""
    key = _key()
    with database.atomic():
        _append([], keying=True)
    _chain.keyed = True
    return fingerprint(key)


# --- the anchor: checkpoints of the head outside the database --------------------------------

@dataclass
class Checkpoint:
    line: int
    seq: int
    hash: str
    at: str


def _anchor_mac(key: bytes, seq: int, digest: str, at: str) -> str:
    return hmac.digest(key, f"anchor {seq} {digest} {at}".encode(), "sha256").hex()


def head() -> tuple[int, str] | None:
    """The last committed event's (seq, hash)."""
    found = sql.rows(_HEAD_SQL)
    return (int(found[0][0]), str(found[0][1])) if found else None


def checkpoint(last: tuple[int, str] | None = None) -> tuple[int, str] | None:
    """Append the head to the anchor file (and the log) unless it is ``last``; returns it.

    One line per checkpoint, ``seq hash time mac``, the MAC keyed like the trail. A single
    ``write`` in append mode, so processes sharing the file never interleave their lines.
    """
    settings = _chain.settings
    assert settings is not None
    now = head()
    if now is None or now == last:
        return now
    seq, digest = now
    at = datetime.now(UTC).isoformat(timespec="seconds")
    line = f"{seq} {digest} {at} {_anchor_mac(_key(), seq, digest, at)}\n"
    path = settings.audit_anchor_path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
        if settings.fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    log.info("audit checkpoint: event %d hash %s", seq, digest)
    return now


class Anchorer:
    """Checkpoints the head at start, every ``audit_anchor_seconds`` while ``leading`` (this
    process holds the scheduler lease: one writer of periodic checkpoints per installation),
    and at a graceful stop. Events after the last checkpoint are the ones a deletion of the
    trail's end could take undetected."""

    def __init__(self, settings: Settings, leading: Callable[[], bool]) -> None:
        self.settings = settings
        self.leading = leading
        self.last: tuple[int, str] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-anchor", daemon=True)

    def start(self) -> None:
        self.write()
        self._thread.start()

    def write(self) -> None:
        try:
            self.last = checkpoint(self.last)
        except Exception:  # a full disk: the next pass tries again; the trail itself is fine
            log.warning("could not write an audit checkpoint to %s",
                        self.settings.audit_anchor_path, exc_info=True)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.audit_anchor_seconds):
            if self.leading():
                self.write()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.write()


@dataclass
class AnchorReport:
    path: Path
    checkpoints: list[Checkpoint] = field(default_factory=list)
    problem: str | None = None
    missing: bool = False  # no file: right for a trail not keyed yet, wrong for a keyed one


def read_anchor(path: Path, key: bytes | None) -> AnchorReport:
    """Every checkpoint in the anchor file, each line's MAC checked; the first bad line is the
    problem. Read before the trail, so checkpoints written meanwhile are not yet looked at.
    Lines need not be in order: processes sharing the file may write theirs a moment apart."""
    report = AnchorReport(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        report.problem, report.missing = "the anchor file does not exist", True
        return report
    except OSError as exc:
        report.problem = f"the anchor file cannot be read: {exc.strerror or exc}"
        return report
    if data and not data.endswith(b"\n"):
        report.problem = "its last line is cut short (the file was truncated or damaged)"
    for number, raw in enumerate(data.split(b"\n")[:-1], 1):
        fields = raw.decode("utf-8", "replace").split(" ")
        try:
            seq, digest, at, mac = int(fields[0]), fields[1], fields[2], fields[3]
            if len(fields) != 4:
                raise ValueError
        except (ValueError, IndexError):
            report.problem = f"line {number} is not a checkpoint (seq hash time mac)"
            return report
        if key is None or not hmac.compare_digest(mac, _anchor_mac(key, seq, digest, at)):
            report.problem = (f"line {number} (event {seq:,}) is not signed with this trail's "
                              "key: forged, or the key was swapped")
            return report
        report.checkpoints.append(Checkpoint(number, seq, digest, at))
    return report


@dataclass
class VerifyReport:
    events: int
    first_bad: int | None = None
    problem: str | None = None
    keyed_since: int | None = None
    fingerprint: str | None = None
    head: tuple[int, str] | None = None
    found: dict[int, str] = field(default_factory=dict)  # the hashes of the wanted events

    @property
    def ok(self) -> bool:
        return self.first_bad is None


def _events(batch: int = 5000) -> Iterator[AuditEvent]:
    last = 0
    while True:
        rows = list(AuditEvent.select().where(AuditEvent.seq > last)
                    .order_by(AuditEvent.seq).limit(batch))
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def verify(wanted: set[int] | None = None) -> VerifyReport:
    """Walk the whole chain; the first event whose link or content does not check is named.

    Plain SHA-256 up to the ``chain_keyed`` event, HMAC with the key from it on. The hashes of
    the ``wanted`` events (the anchored ones) are kept for ``compare``.
    """
    settings = _chain.settings
    key = load_key(settings, create=False) if settings is not None else None
    wanted = wanted or set()
    report = VerifyReport(0)
    prev, expected_seq, use = GENESIS, 1, None
    for ev in _events():
        report.events += 1
        if ev.seq != expected_seq:
            what = "missing" if ev.seq > expected_seq else "repeated"
            return _bad(report, ev.seq, f"event {expected_seq} is {what} (found {ev.seq})")
        if ev.prev_hash != prev:
            return _bad(report, ev.seq, "does not link to the previous event's hash")
        if ev.event == KEYED and use is None:
            theirs = json.loads(ev.details).get("fingerprint")
            report.keyed_since, report.fingerprint = ev.seq, theirs
            if key is None:
                where = key_source(settings) if settings else "no key"
                return _bad(report, ev.seq, f"the trail is keyed from here on, but there is no "
                                            f"key to check it with ({where} does not exist)")
            if fingerprint(key) != theirs:
                return _bad(report, ev.seq, f"the trail is keyed with key fingerprint {theirs}, "
                                            f"but the configured key has {fingerprint(key)}: "
                                            "the key was swapped, or is not this trail's")
            use = key
        digest = _digest(ev.prev_hash, ev.seq, ev.at, ev.host, ev.pid, ev.version, ev.event,
                         ev.sha256, ev.source_file_id, ev.details, use)
        if digest != ev.hash:
            return _bad(report, ev.seq, "content was changed after it was written" if use is None
                        else "content was changed after it was written, or its hash was not "
                             "made with this trail's key")
        if ev.seq in wanted:
            report.found[ev.seq] = ev.hash
        prev, expected_seq = ev.hash, expected_seq + 1
        report.head = (ev.seq, ev.hash)
    return report


def _bad(report: VerifyReport, seq: int, problem: str) -> VerifyReport:
    report.first_bad, report.problem = seq, problem
    return report


def compare(chain: VerifyReport, anchor: AnchorReport) -> str | None:
    """What the trail breaks of the anchor's promises (None: it keeps every one)."""
    if anchor.problem and not (anchor.missing and chain.keyed_since is None):
        return anchor.problem
    if chain.keyed_since is not None and not anchor.checkpoints:
        return (f"it holds no checkpoint, though the trail is keyed since event "
                f"{chain.keyed_since:,} (the worker checkpoints from its first start)")
    last = chain.head[0] if chain.head else 0
    for cp in anchor.checkpoints:
        if cp.seq > last:
            return (f"line {cp.line} checkpointed event {cp.seq:,} at {cp.at}, but the trail "
                    f"ends at event {last:,}: events were deleted from its end")
        if chain.found.get(cp.seq) != cp.hash:
            return (f"line {cp.line} checkpointed event {cp.seq:,} at {cp.at} with another "
                    "hash: the trail was rewritten up to there")
    return None
