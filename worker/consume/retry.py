"""An operator's retry of rejected files (for instance after a parser upgrade or a fixed setting).

The ledger row goes back to ``queued`` (audited, with the reason it had) and is processed right
here, synchronously, from its stored raw bytes — so the command can say at once whether it worked.
That is safe while a worker runs: the retry holds the row's lease from the moment it reopens it,
and if this process dies the lease's dead holder lets the worker's reconciler finish the file.
When the file is then ingested, its quarantined copy and reason file leave quarantine/ (to
processed/, or deleted unless ``after_ingest = "move"``); when it is rejected again, the reason
file is rewritten with the new reason.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from worker.consume import dispose, ingest
from worker.record import ledger, store, who
from worker.record.models import (
    INGESTED,
    REJECTED,
    AuditEvent,
    RawBlob,
    SourceFile,
    database,
)
from worker.settings import Settings


@dataclass(frozen=True)
class Outcome:
    file_id: int
    path: str
    state: str  # ingested | rejected | skipped
    detail: str


def rejected_ids() -> list[int]:
    return [r.id for r in SourceFile.select(SourceFile.id).where(SourceFile.state == REJECTED)
            .order_by(SourceFile.id)]


def retry(settings: Settings, file_id: int, owner: str, reason: str) -> Outcome:
    """Reopen one rejected file, process it now, and tidy quarantine/ after."""
    row = SourceFile.get_or_none(SourceFile.id == file_id)
    if row is None:
        return Outcome(file_id, "?", "skipped", "no such file id")
    if row.state != REJECTED:
        return Outcome(file_id, row.path, "skipped", f"not rejected (it is {row.state})")
    quarantined = quarantined_copy(row)
    problem = _ensure_raw_bytes(settings, row, quarantined)
    if problem:
        return Outcome(file_id, row.path, "skipped", problem)
    if not ledger.reopen(row, owner, settings.lease_seconds, **who.operator(reason)):
        return Outcome(file_id, row.path, "skipped", "changed by someone else meanwhile")
    state = ingest.process(settings, file_id, owner) or _wait_final(file_id)
    row = SourceFile.get_by_id(file_id)
    if quarantined is not None and quarantined.exists():
        if state == INGESTED:
            dispose.release_from_quarantine(settings, row, quarantined)
        else:
            dispose.write_reason(quarantined, row)  # the new reason
    if state == INGESTED:
        return Outcome(file_id, row.path, INGESTED, row.format or "")
    where = f"line {row.error_line}: " if row.error_line else ""
    return Outcome(file_id, row.path, row.state, f"{where}{row.error}")


def quarantined_copy(row: SourceFile) -> Path | None:
    """Where disposal put the file in quarantine/, from its audited ``moved`` event."""
    events = (AuditEvent.select().where(AuditEvent.source_file_id == row.id,
                                        AuditEvent.event == "moved")
              .order_by(AuditEvent.seq.desc()))
    for event in events:
        details = json.loads(event.details)
        if str(details.get("action", "")).startswith("quarantined") and details.get("to"):
            return ledger.details_path(details, "to")
    return None


def _ensure_raw_bytes(settings: Settings, row: SourceFile, quarantined: Path | None) -> str:
    """'' when the stored bytes are there; files rejected for their size were never stored, so
    their quarantined copy is stored now, if it fits the current ``max_file_mb``."""
    if store.has(settings.raw_dir, row.sha256, row.raw_pack) or RawBlob.select().where(
            RawBlob.sha256 == row.sha256).exists():
        return ""
    if quarantined is None or not quarantined.is_file():
        return "its raw bytes were never stored and no quarantined copy is left"
    if quarantined.stat().st_size > settings.max_file_bytes:
        return (f"still over the {settings.max_file_mb:g} MiB limit (max_file_mb); raise it "
                "first")
    data = quarantined.read_bytes()
    if store.sha256_of(data) != row.sha256:
        return f"the quarantined copy {quarantined} no longer matches its SHA-256"
    place = store.put(settings.raw_dir, data, row.sha256, fsync=settings.fsync)
    with database.atomic():
        ledger.mark_stored(row, place, size=len(data), pack=place.pack, offset=place.offset,
                           **ledger.path_details("source", quarantined))
    return ""


def _wait_final(file_id: int, timeout: float = 120.0) -> str:
    """Someone else (a worker's consumer) took the file: wait for its outcome."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = SourceFile.get_by_id(file_id).state
        if state in (INGESTED, REJECTED):
            return state
        time.sleep(0.2)
    return SourceFile.get_by_id(file_id).state
