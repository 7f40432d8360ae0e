"""The trail as a QA reviewer reads it: one file's history, or every event since a date.

``audit show`` finds a file by its ledger id, SHA-256 (or a unique prefix of one) or path, and
lists its events; ``audit export`` writes events as JSON or CSV, with the ``by`` and ``reason``
of operator actions as columns of their own so a spreadsheet can filter on them.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, TextIO

from worker.record import sql
from worker.record.models import AuditEvent, SourceFile
from worker.results.export import neutralise

FIELDS = ("seq", "at", "event", "source_file_id", "sha256", "host", "pid", "version", "by",
          "reason", "details", "hash")
_HEX = re.compile(r"[0-9a-fA-F]{6,64}")


class NotFound(Exception):
    """No file, or more than one, answers to what was asked (the message says which)."""


def find_file(what: str) -> SourceFile:
    """A ledger row by id, SHA-256 (a prefix of at least 6 digits will do) or path."""
    if what.isdigit():
        row = SourceFile.get_or_none(SourceFile.id == int(what))
        if row is not None:
            return row
    if _HEX.fullmatch(what):
        found = list(SourceFile.select().where(SourceFile.sha256.startswith(what.lower()))
                     .limit(2))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise NotFound(f"{what} is the start of more than one file's SHA-256; give more "
                           "digits")
    wanted = what.replace("\\", "/")
    found = list(SourceFile.select().where(SourceFile.path == wanted).order_by(SourceFile.id))
    if not found:
        found = list(SourceFile.select().where(SourceFile.path.endswith("/" + wanted) |
                                               (SourceFile.name == wanted))
                     .order_by(SourceFile.id).limit(20))
    if len(found) == 1:
        return found[0]
    if found:
        ids = ", ".join(str(r.id) for r in found)
        raise NotFound(f"{what} names {len(found)} files (ids {ids}); give the id or SHA-256")
    raise NotFound(f"no file in the ledger has the id, SHA-256 or path {what}; "
                   "accu-ingest status lists recent ones")


def file_events(row: SourceFile) -> list[AuditEvent]:
    return list(AuditEvent.select().where(AuditEvent.source_file_id == row.id)
                .order_by(AuditEvent.seq))


def flat(ev: AuditEvent) -> dict[str, Any]:
    details = json.loads(ev.details)
    return {"seq": ev.seq, "at": ev.at, "event": ev.event, "source_file_id": ev.source_file_id,
            "sha256": ev.sha256, "host": ev.host, "pid": ev.pid, "version": ev.version,
            "by": details.get("by"), "reason": details.get("reason"), "details": details,
            "hash": ev.hash}


def parse_since(text: str) -> str:
    """An ISO date or time (UTC unless it says otherwise) as the trail's ``at`` text."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r} is not a date: give e.g. 2026-12-01 or "
                         "2026-12-01T08:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def events_since(since: str, batch: int = 2000) -> Iterator[AuditEvent]:
    """Events at or after ``since`` in trail order, a batch at a time (a trail is long)."""
    first = sql.rows(f"SELECT MIN(seq) FROM {sql.table(AuditEvent)} WHERE at >= ?", (since,))
    last = (first[0][0] or 0) - 1 if first and first[0][0] is not None else None
    if last is None:
        return
    while rows := list(AuditEvent.select().where(AuditEvent.seq > last)
                       .order_by(AuditEvent.seq).limit(batch)):
        yield from rows
        last = rows[-1].seq


def write_json(events: Iterator[AuditEvent], out: TextIO) -> int:
    """A JSON array, one event an element, written as it is read."""
    n = 0
    out.write("[")
    for ev in events:
        out.write(("," if n else "") + "\n" + json.dumps(flat(ev), ensure_ascii=False))
        n += 1
    out.write("\n]\n")
    return n


def write_csv(events: Iterator[AuditEvent], out: TextIO) -> int:
    writer = csv.writer(out)
    writer.writerow(FIELDS)
    n = 0
    for ev in events:
        row = flat(ev)
        row["details"] = json.dumps(row["details"], ensure_ascii=False, sort_keys=True)
        writer.writerow(["" if row[f] is None else neutralise(row[f]) for f in FIELDS])
        n += 1
    return n


def json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
