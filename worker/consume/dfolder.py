"""Files that together make one injection: the Agilent ChemStation ``.D`` folder.

ChemStation writes one injection as a folder ``<name>.D`` holding ``Report.TXT`` (the printed
Area Percent report) and, when the CSV export is on, the CSV report set ``Report00.CSV`` (run
facts and column names) + ``REPORT01.CSV`` … (the peak rows of signal 1 …). The watcher registers
each file alone, in whatever order they arrive; this module decides what each one contributes so
that a lab gets **one injection per ``.D`` folder, its peaks once**:

* The Job is the folder holding the ``.D`` folders (the sequence), the sample identity comes from
  the report's ``Sample Name`` or else the ``.D`` folder's name, not from ``Report.TXT``.
* ``Report.TXT`` is authoritative for the peaks: it is parsed and written like any file.
* The CSV set files are then linked evidence: ingested (their raw bytes kept, ledger state
  ``ingested``, an audit event naming the file that holds the peaks) with no second copy of the
  peaks. They wait while the folder's ``Report.TXT`` is still queued.
* Without a usable ``Report.TXT`` (absent ``group_settle_seconds`` after the folder's last file
  arrived, or rejected), ``Report00.CSV`` writes the injection from the registry's ``parse_set``
  (the set part of the parser contract) over the raw bytes of its siblings in the ledger, and the
  ``REPORTnn.CSV`` files are its evidence. A set that is incomplete is rejected by ``parse_set``
  with what is missing; a ``REPORTnn.CSV`` whose folder
  has neither header nor report is rejected (its columns would be a guess).
* A ``Report.TXT`` that arrives after the set was written supersedes the set's injection, so the
  current rows do not depend on arrival order; inside the writing transaction a set never writes
  over a ``Report.TXT`` that got in first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from worker import parsers
from worker.parsers import ParserOptions, chemstation_csv
from worker.parsers.base import ParsedFile, ParseError
from worker.record import audit, ledger
from worker.record.models import INGESTED, REJECTED, Injection, SourceFile, utcnow
from worker.results.sample import recompute_sample
from worker.settings import MethodSettings, Settings

REPORT, SET_HEADER, SET_ROWS = "report", "set-header", "set-rows"
_SET_ROWS = re.compile(r"report[0-9]{2}\.csv")
_WAIT_SECONDS = 1.0  # how soon a waiting set file is looked at again


class NotYet(Exception):
    """The file's role depends on siblings not final yet: give it back, retry in ``seconds``."""

    def __init__(self, reason: str, seconds: float = _WAIT_SECONDS) -> None:
        super().__init__(reason)
        self.seconds = seconds


@dataclass(frozen=True)
class Member:
    """A file inside a ``.D`` folder that plays a part in the injection."""

    folder: str
    role: str


@dataclass(frozen=True)
class Evidence:
    """The file is evidence of the injection written from ``holder``: no rows of its own."""

    holder: SourceFile
    format: str


def member(path: str) -> Member | None:
    """The ``.D`` role of an inbox-relative path, or None for an ordinary file."""
    p = PurePosixPath(path)
    if not _in_d_folder(p):
        return None
    name = p.name.lower()
    role = (REPORT if name == "report.txt" else SET_HEADER if name == "report00.csv"
            else SET_ROWS if _SET_ROWS.fullmatch(name) else None)
    return Member(str(p.parent), role) if role else None


def job_folder(path: str) -> str:
    """The folder that is the file's Job: a ``.D`` folder's parent (the sequence), else the
    file's own folder ('.' for a loose file). A ``.D`` folder dropped on its own is its Job."""
    p = PurePosixPath(path)
    if _in_d_folder(p) and str(p.parent.parent) != ".":
        return str(p.parent.parent)
    return str(p.parent)


def fallback_name(path: str) -> str:
    """What names the sample when the file has no sample name: the ``.D`` folder, else the file."""
    p = PurePosixPath(path)
    return p.parent.name[:-2] if _in_d_folder(p) else p.name


def options(settings: Settings) -> ParserOptions:
    return ParserOptions(encodings=tuple(settings.encodings.items()),
                         tables=tuple(settings.tables.values()),
                         default_encoding=settings.default_encoding,
                         date_order=settings.date_order,
                         max_peaks_per_table=settings.max_peaks_per_table,
                         max_trace_points=settings.max_trace_points,
                         max_sheet_cells=settings.max_sheet_cells)


def parse(settings: Settings, row: SourceFile, data: bytes,
          raw_of: Callable[[SourceFile], bytes]) -> ParsedFile | Evidence:
    """Parse ``row`` as what it is in its injection (see the module docstring)."""
    found = member(row.path)
    parser_options = options(settings)
    if found is None or found.role == REPORT:
        return parsers.parse(data, row.name, parser_options)
    if chemstation_csv.sniff(parsers.head(data), row.name,
                             parser_options) < parsers.MIN_CONFIDENCE:
        return parsers.parse(data, row.name, parser_options)  # not a set file after all
    siblings = _siblings(row, found.folder)
    report = siblings.get("report.txt")
    if report is not None and report.state != REJECTED:
        if report.state != INGESTED:
            raise NotYet(f"{found.folder}/Report.TXT is not ingested yet")
        return Evidence(report, chemstation_csv.name)
    newest = max([row.first_seen, *(s.first_seen for s in siblings.values())])
    waited = (utcnow() - newest).total_seconds()
    if waited < settings.group_settle_seconds:
        raise NotYet("waiting for the rest of the .D folder",
                     max(0.2, min(_WAIT_SECONDS, settings.group_settle_seconds - waited)))
    if found.role == SET_ROWS:
        header = siblings.get("report00.csv")
        if header is None:
            raise ParseError("a REPORTnn.CSV of a ChemStation CSV report set, but its .D folder "
                             "has neither Report00.CSV (which names the columns) nor Report.TXT; "
                             "drop the whole .D folder", filename=row.name)
        if header.state == REJECTED:
            raise ParseError(f"its report set cannot be read: Report00.CSV was rejected "
                             f"({header.error})", filename=row.name)
        if header.state != INGESTED:
            raise NotYet(f"{found.folder}/Report00.CSV is not ingested yet")
        return Evidence(header, chemstation_csv.name)
    files = {row.name: data}
    files.update({s.name: raw_of(s) for key, s in siblings.items() if _SET_ROWS.fullmatch(key)})
    return parsers.parse_set(files, parser_options)


def settle_folder(row: SourceFile, methods: Mapping[str, MethodSettings]) -> None:
    """Inside the transaction writing ``row``'s injection: Report.TXT supersedes the current
    injections of its ``.D`` folder's set; a set finding a current Report.TXT injection backs off
    (NotYet: next time it is evidence)."""
    found = member(row.path)
    if found is None:
        return
    current = [i for i in (Injection.select(Injection, SourceFile).join(SourceFile)
                           .where(Injection.superseded == False,  # noqa: E712
                                  SourceFile.origin == row.origin, SourceFile.id != row.id,
                                  SourceFile.path.startswith(found.folder + "/")))
               if (m := member(i.source_file.path)) is not None and m.folder == found.folder]
    if found.role != REPORT:
        if any(member(i.source_file.path).role == REPORT for i in current):  # type: ignore[union-attr]
            raise NotYet(f"{found.folder}/Report.TXT was ingested meanwhile")
        return
    stale = [i for i in current if member(i.source_file.path).role != REPORT]  # type: ignore[union-attr]
    if not stale:
        return
    Injection.update(superseded=True).where(Injection.id.in_([i.id for i in stale])).execute()
    audit.record("superseded_by_report", row.sha256, row.id, folder=found.folder,
                 injections=[i.id for i in stale])
    for sample in {i.sample for i in stale}:
        recompute_sample(sample, methods)


def write_evidence(row: SourceFile, evidence: Evidence) -> None:
    """Ingest ``row`` as evidence of ``evidence.holder``'s injection: its state, job and audit,
    no rows of its own. Inside the caller's transaction, which holds the lease."""
    holder = SourceFile.get_by_id(evidence.holder.id)
    injection = holder.injections.where(Injection.superseded == False).first()  # noqa: E712
    ledger.mark_ingested(row, evidence.format, chemstation_csv.version, holder.job_id,
                         role="evidence", evidence_of=holder.id, evidence_path=holder.path,
                         injection=injection.id if injection else None, peaks=0)


def _in_d_folder(p: PurePosixPath) -> bool:
    return len(p.parts) >= 2 and p.parent.name.lower().endswith(".d") and len(p.parent.name) > 2


def _siblings(row: SourceFile, folder: str) -> dict[str, SourceFile]:
    """The latest revision of every other file registered in the same ``.D`` folder, by lower-case
    name."""
    found: dict[str, SourceFile] = {}
    query = (SourceFile.select()
             .where(SourceFile.origin == row.origin, SourceFile.id != row.id,
                    SourceFile.path.startswith(folder + "/"))
             .order_by(SourceFile.id))
    for sibling in query:
        if str(PurePosixPath(sibling.path).parent) == folder and sibling.path != row.path:
            found[sibling.name.lower()] = sibling
    return found
