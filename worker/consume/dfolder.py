"""An instrument's data folder is one injection: the Agilent ChemStation ``.D`` folder.

ChemStation (and OpenLab CDS ChemStation Edition) writes one injection as a folder
``<name>.D``: the detector signals (``*.ch``, one per channel), the DAD spectra (``*.UV``), the
run facts (``SAMPLE.XML``, ``acq.txt``, ``RUN.LOG``), when reporting to file is on the report
(``Report.TXT``, the CSV report set ``Report00.CSV`` + ``REPORTnn.CSV``, ``Result.xml``), and
much else (method copies ``ACQ.M/`` ``DA.M/``, registries, logs, a printed PDF). The watcher
takes the folder's files together once the folder is settled (``intake.watcher``) and registers
each alone; this module decides what each contributes, so that a lab gets **one injection per
``.D`` folder with everything in it, its peaks once, and nothing rejected that is not broken**:

* One file **writes** the injection (the *writer*): the first of ``Report.TXT``,
  ``Result.xml``, ``Report00.CSV`` (the set, read with ``parse_set``), the first ``*.ch``, the
  first ``*.UV`` that is not rejected. It reads its own bytes and every sibling's (from the raw
  store): peaks from the report, one chromatogram per ``*.ch``, the spectra of each ``*.UV``
  (``Spectrum`` rows), the run facts of every file that states them, cross-checked
  (``InjectionDetail``: a fact two files state differently is flagged with both values, and
  the injection is filed under the report's), and a link for every file of the folder
  (``InjectionFile``). A folder without a report is still an injection, flagged
  ``no_integration_report``; a writer that is not a report waits ``group_settle_seconds`` after
  the folder's last file for one.
* Every other file waits until the writer is final, then is **evidence** (state ``ingested``:
  read into the injection — signals, spectra, run facts, the CSV set beside ``Report.TXT``) or
  **context** (state ``context``: stored, audited, linked, read by no parser — methods,
  registries, logs, PDFs, spreadsheets, anything in a subfolder). A data file the writer could
  not read (a truncated ``.ch``) is rejected with the reason; the injection carries a flag.
* A file of the folder registered after its injection was written (a ``Report.TXT`` written
  after the run, a re-exported report) writes the folder's injection anew when it outranks the
  writer or was not read into it; the old one is superseded, so the current rows do not depend
  on arrival order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath

from peewee import fn

from worker import parsers
from worker.intake.groups import folder_of
from worker.parsers import (
    ParserOptions,
    chemstation_ch,
    chemstation_csv,
    chemstation_folder,
    chemstation_uv,
    chemstation_xml,
)
from worker.parsers.base import ParsedFile, ParseError, Signal, Spectra
from worker.record import audit, ledger, sql
from worker.record.models import (
    CONTEXT,
    FINAL_STATES,
    INGESTED,
    REJECTED,
    AuditEvent,
    Injection,
    InjectionDetail,
    InjectionFile,
    SourceFile,
    utcnow,
)
from worker.results import extras, spectra
from worker.results.sample import recompute_sample
from worker.settings import MethodSettings, Settings

REPORT, RESULT_XML, SET_HEADER, SET_ROWS = "report", "result-xml", "set-header", "set-rows"
SIGNAL, SPECTRA, METADATA, CONTEXT_ROLE = "signal", "spectra", "metadata", "context"
# Who writes the folder's injection: the first of these present and not rejected.
WRITERS = (REPORT, RESULT_XML, SET_HEADER, SIGNAL, SPECTRA)
FOLDER_FORMAT = "agilent-chemstation-folder"
NO_REPORT = "no_integration_report"
DISAGREES = "metadata_disagrees"
UNREADABLE = "unreadable_file"
_SET_ROWS = re.compile(r"report[0-9]{2}\.csv")
_WAIT_SECONDS = 1.0  # how soon a waiting file is looked at again


class NotYet(Exception):
    """The file's role depends on siblings not final yet: give it back, retry in ``seconds``."""

    def __init__(self, reason: str, seconds: float = _WAIT_SECONDS) -> None:
        super().__init__(reason)
        self.seconds = seconds


@dataclass(frozen=True)
class Member:
    """A file inside a ``.D`` folder, and the part it plays in the injection."""

    folder: str
    role: str


@dataclass(frozen=True)
class Evidence:
    """The file is part of the injection ``holder`` wrote: no rows of its own. ``state`` is
    ``ingested`` (read into it) or ``context``."""

    holder: SourceFile
    format: str | None
    role: str = "evidence"
    state: str = INGESTED
    version: str | None = None


@dataclass
class Folder:
    """What a writer writes: the injection's rows (``parsed``: peaks, chromatograms, run facts)
    and, beside them, its spectra, its files and its cross-checked facts."""

    parsed: ParsedFile
    spectra: list[tuple[int, Spectra]] = field(default_factory=list)
    links: list[tuple[int, str, str | None]] = field(default_factory=list)
    facts: dict[str, dict[str, str]] = field(default_factory=dict)
    flags: list[dict[str, object]] = field(default_factory=list)
    rank: int = 0  # the writer's place in WRITERS: a better one registered meanwhile wins

    @property
    def format(self) -> str:
        return self.parsed.format


def role_of(path: str, folder: str) -> str:
    """What a file of ``folder`` is, by its name and place: only the folder's own files are read
    (subfolders hold method copies)."""
    p = PurePosixPath(path)
    if str(p.parent) != folder:
        return CONTEXT_ROLE
    name = p.name.lower()
    if name == "report.txt":
        return REPORT
    if name == "result.xml":
        return RESULT_XML
    if name == "report00.csv":
        return SET_HEADER
    if _SET_ROWS.fullmatch(name):
        return SET_ROWS
    if name.endswith(".ch"):
        return SIGNAL
    if name.endswith(".uv"):
        return SPECTRA
    if name in chemstation_folder.READERS:
        return METADATA
    return CONTEXT_ROLE


def member(path: str) -> Member | None:
    """The ``.D`` role of an inbox-relative path, or None for a file outside a ``.D`` folder."""
    folder = folder_of(path)
    return Member(folder, role_of(path, folder)) if folder is not None else None


def job_folder(path: str) -> str:
    """The folder that is the file's Job: a ``.D`` folder's parent (the sequence), else the
    file's own folder ('.' for a loose file). A ``.D`` folder dropped on its own is its Job."""
    folder = folder_of(path)
    if folder is not None and str(PurePosixPath(folder).parent) != ".":
        return str(PurePosixPath(folder).parent)
    if folder is not None:
        return folder
    return str(PurePosixPath(path).parent)


def fallback_name(path: str) -> str:
    """What names the sample when the file has no sample name: the ``.D`` folder, else the file."""
    folder = folder_of(path)
    return PurePosixPath(folder).name[:-2] if folder is not None else PurePosixPath(path).name


def options(settings: Settings) -> ParserOptions:
    return ParserOptions(encodings=tuple(settings.encodings.items()),
                         tables=tuple(settings.tables.values()),
                         default_encoding=settings.default_encoding,
                         date_order=settings.date_order,
                         max_peaks_per_table=settings.max_peaks_per_table,
                         max_trace_points=settings.max_trace_points,
                         max_sheet_cells=settings.max_sheet_cells)


def parse(settings: Settings, row: SourceFile, data: bytes,
          raw_of: Callable[[SourceFile], bytes],
          parser_options: ParserOptions | None = None) -> ParsedFile | Evidence | Folder:
    """Parse ``row`` as what it is in its injection (see the module docstring);
    ``parser_options``: ``options(settings)``, made once for a batch of files."""
    found = member(row.path)
    parser_options = parser_options or options(settings)
    if found is None:
        return parsers.parse(data, row.name, parser_options)
    siblings = _siblings(row, found.folder)
    writer = _writer([*siblings.values(), row], found.folder)
    if writer is None:  # nothing to make an injection of: all context, once settled
        _settled(settings, row, siblings)
        return Evidence(row, None, CONTEXT_ROLE, CONTEXT)
    current = _current_injection(row, found.folder)
    if writer.id == row.id or (current is not None and _outdates(row, found, current)):
        if role_of(writer.path, found.folder) not in (REPORT, RESULT_XML):
            _settled(settings, row, siblings)  # a report may still come
        return _assemble(row, data, writer, siblings, raw_of, parser_options)
    if writer.state not in FINAL_STATES:
        raise NotYet(f"{writer.path} is not final yet")
    if current is None:
        return Evidence(writer, None, CONTEXT_ROLE, CONTEXT)
    return _part_of(row, found, current)


def _writer(files: list[SourceFile], folder: str) -> SourceFile | None:
    ranked = sorted((WRITERS.index(role), f.name.lower(), f.id, f) for f in files
                    if (role := role_of(f.path, folder)) in WRITERS and f.state != REJECTED)
    return ranked[0][3] if ranked else None


def _settled(settings: Settings, row: SourceFile, siblings: Mapping[str, SourceFile]) -> None:
    newest = max([row.first_seen, *(s.first_seen for s in siblings.values())])
    waited = (utcnow() - newest).total_seconds()
    if waited < settings.group_settle_seconds:
        raise NotYet("waiting for the rest of the .D folder",
                     max(0.2, min(_WAIT_SECONDS, settings.group_settle_seconds - waited)))


def _outdates(row: SourceFile, found: Member, current: Injection) -> bool:
    """Must ``row``, registered after the folder's injection was written, write it anew? When it
    outranks what wrote it, or holds data (a signal, spectra, run facts) it did not read."""
    if found.role not in (*WRITERS, METADATA) or _linked(current.id, row.id) is not None:
        return False
    if found.role in (SIGNAL, SPECTRA, METADATA):
        return True
    return _rank(found.role) < _content_rank(current.id)


def _content_rank(injection_id: int) -> int:
    """The rank (in WRITERS) of the best file an injection was read from."""
    roles = [link.role for link in InjectionFile.select(InjectionFile.role, InjectionFile.note)
             .where(InjectionFile.injection == injection_id) if link.note is None]
    return min((_rank(r) for r in roles), default=len(WRITERS))


def _part_of(row: SourceFile, found: Member, current: Injection) -> Evidence:
    """``row``'s final word as a part of the folder's current injection."""
    holder = current.source_file
    link = _linked(current.id, row.id)
    if link is not None and link.note and found.role in (SIGNAL, SPECTRA, METADATA, RESULT_XML):
        raise ParseError(link.note, filename=row.name)
    if found.role == CONTEXT_ROLE or (link is not None and link.role == CONTEXT_ROLE):
        return Evidence(holder, None, CONTEXT_ROLE, CONTEXT)
    if found.role in (SET_HEADER, SET_ROWS):
        return Evidence(holder, chemstation_csv.name, "evidence", version=chemstation_csv.version)
    if found.role == METADATA:
        fmt, _ = chemstation_folder.READERS[row.name.lower()]
        return Evidence(holder, fmt, METADATA, version=chemstation_folder.version)
    module = {SIGNAL: chemstation_ch, SPECTRA: chemstation_uv, RESULT_XML: chemstation_xml}
    read = module.get(found.role)
    return Evidence(holder, read.name if read else row.format, found.role,
                    version=read.version if read else row.parser_version)


def _assemble(row: SourceFile, data: bytes, writer: SourceFile,
              siblings: Mapping[str, SourceFile], raw_of: Callable[[SourceFile], bytes],
              parser_options: ParserOptions) -> Folder:
    """The whole folder's injection, written by ``row``: the peaks of ``writer`` when it is a
    report, and every sibling's signals, spectra and run facts."""
    folder = folder_of(row.path) or ""
    files = {**{s.path: s for s in siblings.values()}, row.path: row}
    writer_role = role_of(writer.path, folder)

    def raw(f: SourceFile) -> bytes:
        return data if f.id == row.id else raw_of(f)

    main: ParsedFile | None = None
    if writer_role in (REPORT, RESULT_XML):
        main = parsers.parse(raw(writer), writer.name, parser_options)
    elif writer_role == SET_HEADER:
        rows = {s.name: raw(s) for s in files.values()
                if role_of(s.path, folder) == SET_ROWS and s.state != REJECTED}
        main = parsers.parse_set({writer.name: raw(writer), **rows}, parser_options)
    links: list[tuple[int, str, str | None]] = []
    flags: list[dict[str, object]] = []
    read_spectra: list[tuple[int, Spectra]] = []
    facts: dict[str, dict[str, str]] = {}
    signals: list[Signal] = []
    first_read: ParsedFile | None = None
    if main is not None:
        _facts_of(facts, writer.name, main)
    seen = [(f.path, f) for f in files.values()]
    seen += list(_sightings(list(files.values()), folder).items())
    for path, f in sorted(seen, key=lambda item: item[0].lower()):
        role = role_of(path, folder)
        name = PurePosixPath(path).name
        if f.id == writer.id and main is not None:
            links.append((f.id, role, None))
            continue
        if role in (SET_HEADER, SET_ROWS) and main is not None:
            links.append((f.id, "evidence", None))
            continue
        if role not in (SIGNAL, SPECTRA, METADATA, RESULT_XML, REPORT) or f.state == REJECTED:
            links.append((f.id, role if role in WRITERS else CONTEXT_ROLE,
                          f.error if f.state == REJECTED else None))
            continue
        try:
            read = _read_part(role, raw(f), name, parser_options)
        except ParseError as exc:
            if f.id in (writer.id, row.id):
                raise  # its own bytes: it is rejected (a writer: the next file writes)
            links.append((f.id, role, str(exc.reason)))
            flags.append({"flag": UNREADABLE, "file": name, "reason": exc.reason})
            continue
        links.append((f.id, role, None))
        if isinstance(read, dict):
            for key, value in read.items():
                facts.setdefault(key, {})[name] = value
            continue
        _facts_of(facts, name, read)
        if role in (REPORT, RESULT_XML):
            continue  # a second report: its facts cross-checked, its peaks not doubled
        first_read = first_read or read
        signals.extend(read.signals)
        read_spectra.extend((f.id, s) for s in read.spectra)
    base = main or first_read
    if base is None:
        raise ParseError("none of the .D folder's signals or spectra could be read ("
                         + "; ".join(n for _, _, n in links if n) + ")", filename=row.name)
    flags.extend(_disagreements(facts, folder))
    if main is None:
        flags.insert(0, {"flag": NO_REPORT, "folder": folder})
    name = main.sample_name if main is not None else _fact(facts, "sample")
    parsed = base.model_copy(update={
        "format": base.format if main is not None else FOLDER_FORMAT,
        "sample_name": name or base.sample_name,
        "acquired_at": base.acquired_at or _time(_fact(facts, "acquired_at")),
        "signals": [*(main.signals if main is not None else ()), *signals],
        "spectra": [],
        "flags": [*base.flags, *dict.fromkeys(str(f["flag"]) for f in flags)]})
    return Folder(parsed=parsed, spectra=read_spectra, links=links, facts=facts, flags=flags,
                  rank=_rank(writer_role))


def _read_part(role: str, data: bytes, name: str,
               parser_options: ParserOptions) -> ParsedFile | dict[str, str]:
    if role == SIGNAL:
        return chemstation_ch.parse(data, name, parser_options)
    if role == SPECTRA:
        return chemstation_uv.parse(data, name, parser_options)
    if role == RESULT_XML:
        return chemstation_xml.parse(data, name, parser_options)
    if role == REPORT:
        return parsers.parse(data, name, parser_options)
    return chemstation_folder.READERS[name.lower()][1](data, name)


# The facts cross-checked between a folder's files, and how each is compared.
_FACTS = ("sample", "acquired_at", "method", "vial", "injection", "operator",
          "injection_volume", "data_file")


def _facts_of(facts: dict[str, dict[str, str]], name: str, parsed: ParsedFile) -> None:
    for key, value in (("sample", parsed.sample_name),
                       ("acquired_at", parsed.acquired_at.isoformat()
                        if parsed.acquired_at else None),
                       ("method", parsed.method), ("vial", parsed.vial),
                       ("injection", str(parsed.injection) if parsed.injection else None),
                       ("operator", parsed.operator),
                       ("injection_volume", parsed.injection_volume),
                       ("instrument", parsed.instrument)):
        if value:
            facts.setdefault(key, {})[name] = str(value)


def _same(key: str, a: str, b: str) -> bool:
    if key == "method":  # a report prints the method's path, a header its name
        def base(m: str) -> str:
            return re.split(r"[\\/]", m.strip().rstrip("\\/"))[-1].lower().removesuffix(".m")
        return base(a) == base(b)
    if key == "acquired_at":
        return (_time(a) or a) == (_time(b) or b)
    if key == "vial":
        return a.strip().lstrip("0") == b.strip().lstrip("0")
    return " ".join(a.split()).lower() == " ".join(b.split()).lower()


def _disagreements(facts: dict[str, dict[str, str]], folder: str) -> list[dict[str, object]]:
    """One flag per fact the folder's files state differently, naming every value and where
    it was read."""
    found: list[dict[str, object]] = []
    if "started" in facts:  # RUN.LOG's start is the injection time
        for source, value in facts["started"].items():
            facts.setdefault("acquired_at", {})[source] = value
    if "data_file" in facts:  # acq.txt names the .D folder it acquired into
        facts["data_file"] = {**facts["data_file"], folder: PurePosixPath(folder).name}
        facts["data_file"] = {k: re.split(r"[\\/]", v)[-1] for k, v in facts["data_file"].items()}
    for key in _FACTS:
        values = facts.get(key, {})
        distinct: list[str] = []
        for value in values.values():
            if not any(_same(key, value, seen) for seen in distinct):
                distinct.append(value)
        if len(distinct) > 1:
            found.append({"flag": DISAGREES, "fact": key, "values": dict(values)})
    return found


def _fact(facts: dict[str, dict[str, str]], key: str) -> str | None:
    values = facts.get(key, {})
    return next(iter(values.values()), None)


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def settle_folder(row: SourceFile, methods: Mapping[str, MethodSettings]) -> None:
    """Inside the transaction writing ``row``'s injection: it supersedes the current injections
    of its ``.D`` folder (``write_folder`` then backs off when a file that outranks its writer
    was registered meanwhile)."""
    found = member(row.path)
    if found is None:
        return
    current = [i for i in (Injection.select(Injection, SourceFile).join(SourceFile)
                           .where(Injection.superseded == False,  # noqa: E712
                                  SourceFile.origin == row.origin, SourceFile.id != row.id,
                                  SourceFile.path.startswith(found.folder + "/")))
               if folder_of(i.source_file.path) == found.folder]
    if not current:
        return
    Injection.update(superseded=True).where(Injection.id.in_([i.id for i in current])).execute()
    audit.record("superseded_by_report", row.sha256, row.id, folder=found.folder,
                 injections=[i.id for i in current])
    for sample in {i.sample for i in current}:
        recompute_sample(sample, methods)


def _rank(role: str) -> int:
    return WRITERS.index(role) if role in WRITERS else len(WRITERS)


def write_folder(row: SourceFile, folder: Folder) -> None:
    """After ``ingest`` wrote the injection's rows: its spectra, links and facts. Inside the
    caller's transaction."""
    found = member(row.path)
    assert found is not None
    writer = _writer([*_siblings(row, found.folder).values(), row], found.folder)
    if writer is not None and _rank(role_of(writer.path, found.folder)) < folder.rank:
        raise NotYet(f"{writer.path} was registered meanwhile: it writes {found.folder}")
    injection = (Injection.select().where(Injection.source_file == row.id,
                                          Injection.superseded == False)  # noqa: E712
                 .order_by(Injection.id.desc()).first())
    for source_id, read in folder.spectra:
        spectra.store(injection.id, source_id, read)
    extras.peak_details(injection.id, folder.parsed)
    seen: set[int] = set()
    rows = []
    for source_id, role, note in folder.links:
        if source_id not in seen:
            seen.add(source_id)
            rows.append((injection.id, source_id, role, note))
    sql.insert(InjectionFile, ("injection_id", "source_file_id", "role", "note"), rows)
    InjectionDetail.create(injection=injection.id, metadata=json.dumps(folder.facts,
                                                                       sort_keys=True),
                           flags=json.dumps(folder.flags, sort_keys=True, default=str))


def write_evidence(row: SourceFile, evidence: Evidence) -> None:
    """Final state of a part of a folder's injection: its job, links and audit, no rows of its
    own. Inside the caller's transaction, which holds the lease."""
    holder = SourceFile.get_by_id(evidence.holder.id)
    injection = holder.injections.where(Injection.superseded == False).first()  # noqa: E712
    if injection is not None and _linked(injection.id, row.id) is None:
        InjectionFile.create(injection=injection.id, source_file=row.id, role=evidence.role)
    details: dict[str, object] = {"role": evidence.role,
                                  "injection": injection.id if injection else None}
    if holder.id != row.id:  # else a folder with nothing to make an injection of
        details.update(evidence_of=holder.id, evidence_path=holder.path)
    if evidence.state == CONTEXT:
        ledger.mark_context(row, holder.job_id if injection else None,
                            folder=folder_of(row.path), **details)
        return
    ledger.mark_ingested(row, evidence.format or holder.format or "", evidence.version
                         or holder.parser_version or "", holder.job_id, peaks=0, **details)


def _linked(injection_id: int, file_id: int) -> InjectionFile | None:
    return InjectionFile.get_or_none(InjectionFile.injection == injection_id,
                                     InjectionFile.source_file == file_id)


def _current_injection(row: SourceFile, folder: str) -> Injection | None:
    return next((i for i in (Injection.select(Injection, SourceFile).join(SourceFile)
                             .where(Injection.superseded == False,  # noqa: E712
                                    SourceFile.origin == row.origin,
                                    SourceFile.path.startswith(folder + "/"))
                             .order_by(Injection.id.desc()))
                 if folder_of(i.source_file.path) == folder), None)


# Events a batch registers per new file (detected, stable, stored, queued) and its largest size
# (intake.watcher.INTAKE_BATCH): a folder's duplicate sightings lie this close after its first.
_BATCH_EVENTS = 4 * 1024 + 16


def _sightings(files: list[SourceFile], folder: str) -> dict[str, SourceFile]:
    """Files of ``folder`` whose content the ledger already had from elsewhere (a method copy
    identical to the previous run's): not rows of their own, only ``duplicate`` events of the
    batch that registered the folder. By path, the row holding their content."""
    first = (AuditEvent.select(fn.MIN(AuditEvent.seq))
             .where(AuditEvent.source_file_id.in_([f.id for f in files]),
                    AuditEvent.event == "detected").scalar())
    if first is None:
        return {}
    found: dict[str, int] = {}
    for event in (AuditEvent.select(AuditEvent.source_file_id, AuditEvent.details)
                  .where(AuditEvent.seq.between(first, first + _BATCH_EVENTS),
                         AuditEvent.event == "duplicate")):
        path = json.loads(event.details).get("path", "")
        if folder_of(path) == folder and event.source_file_id is not None:
            found[path] = event.source_file_id
    known = {f.path for f in files}
    rows = {r.id: r for r in SourceFile.select().where(SourceFile.id.in_(list(found.values())))}
    return {path: rows[i] for path, i in found.items() if path not in known and i in rows}


def _siblings(row: SourceFile, folder: str) -> dict[str, SourceFile]:
    """The latest revision of every other file registered in the ``.D`` folder (subfolders
    included), by path."""
    found: dict[str, SourceFile] = {}
    query = (SourceFile.select()
             .where(SourceFile.origin == row.origin, SourceFile.id != row.id,
                    SourceFile.path.startswith(folder + "/"))
             .order_by(SourceFile.id))
    for sibling in query:
        if sibling.path != row.path and folder_of(sibling.path) == folder:
            found[sibling.path] = sibling
    return found


__all__ = ["Evidence", "Folder", "Member", "NotYet", "folder_of", "job_folder",
           "member", "parse", "settle_folder", "write_evidence", "write_folder"]
