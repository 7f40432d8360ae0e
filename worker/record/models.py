"""The database tables. Names are the contract of DESIGN.md; the ledger (SourceFile) is the truth.

All models bind to one ``DatabaseProxy`` so SQLite and PostgreSQL share the same definitions.
"""

from __future__ import annotations

from datetime import UTC, datetime

from peewee import (
    BigIntegerField,
    BlobField,
    BooleanField,
    CharField,
    CompositeKey,
    DatabaseProxy,
    DateTimeField,
    FloatField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

database = DatabaseProxy()

# Ledger states. Final states never change again except through an audited retry.
QUEUED = "queued"          # raw bytes stored, ledger row written, task enqueued
PROCESSING = "processing"  # a consumer holds the lease
INGESTED = "ingested"
REJECTED = "rejected"
# Stored and audited as part of an instrument folder's injection (a method, a log, a PDF),
# read by no parser: never rejected (consume/dfolder.py).
CONTEXT = "context"
FINAL_STATES = (INGESTED, REJECTED, CONTEXT)
# What a Sample is (Sample.kind): from the file, else from its name (consume/sample_names.py).
SAMPLE, STANDARD, BLANK, OTHER = "sample", "standard", "blank", "other"
STATES = (QUEUED, PROCESSING, INGESTED, REJECTED, CONTEXT)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class Job(BaseModel):
    """One batch: an export / sequence folder, or the loose files dropped together."""

    key = CharField(unique=True, help_text="origin host + folder relative to the inbox")
    name = CharField()
    instrument = CharField(null=True)
    method = CharField(null=True)
    acquired_at = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)


class SourceFile(BaseModel):
    """The ledger: one row per distinct content (SHA-256) that entered the inbox."""

    sha256 = CharField(max_length=64, unique=True)
    path = TextField(help_text="path relative to the inbox when first seen")
    path_bytes = BlobField(null=True, help_text="the path's bytes when they are not UTF-8 "
                           "(path shows them as \\xNN escapes); None: path is exact")
    name = CharField()
    origin = CharField(help_text="host that watched the inbox")
    size = BigIntegerField()
    mtime_ns = BigIntegerField()
    first_seen = DateTimeField(default=utcnow)
    state = CharField(index=True, default=QUEUED)
    attempts = IntegerField(default=0)
    lease_until = FloatField(default=0.0, help_text="epoch seconds; 0 = free")
    lease_owner = CharField(null=True)
    format = CharField(null=True)
    parser_version = CharField(null=True)
    error = TextField(null=True)
    error_line = IntegerField(null=True)
    job = ForeignKeyField(Job, null=True, backref="files", on_delete="RESTRICT")
    previous = ForeignKeyField("self", null=True, backref="revisions",
                               help_text="the earlier revision of the same path")
    finished_at = DateTimeField(null=True)
    disposed = BooleanField(default=False, help_text="source has left the inbox")
    raw_pack = CharField(null=True, help_text="raw store pack holding the bytes (None: raw/ab/…)")
    raw_offset = BigIntegerField(null=True, help_text="where their record starts in the pack")


class Disposal(BaseModel):
    """A source file about to leave the inbox: recorded before it is moved or deleted, removed
    in the transaction that marks it disposed, so a crash or outage in between is repaired."""

    source_file = ForeignKeyField(SourceFile, primary_key=True, on_delete="CASCADE")
    action = CharField(help_text="moved | quarantined | quarantined (copy) | deleted")
    target = TextField(null=True, help_text="where it goes (None: deleted)")
    target_bytes = BlobField(null=True, help_text="the target's bytes when not UTF-8")
    recorded_at = DateTimeField(default=utcnow)


class DuplicateCopy(BaseModel):
    """A copy of content the ledger already had (migration 13): one row per copy, so each is
    seen on its original's page, and a copy that arrived while its original was in flight
    waits in the inbox until the original is final, then follows it (quarantine/ when it was
    rejected, processed/ when ingested)."""

    original = ForeignKeyField(SourceFile, backref="copies", on_delete="CASCADE")
    origin = CharField(help_text="the watcher whose inbox holds the copy")
    path = TextField(help_text="relative to that inbox, as the ledger writes paths")
    path_bytes = BlobField(null=True)
    size = BigIntegerField()
    mtime_ns = BigIntegerField()
    seen_at = DateTimeField(default=utcnow)
    disposed = BooleanField(default=False, help_text="the copy has left the inbox (or is kept)")

    class Meta:
        table_name = "duplicate_copy"
        indexes = ((("origin", "disposed"), False),)


class RawBlob(BaseModel):
    """Raw bytes kept in the database, so consumers on other machines need no shared folder."""

    sha256 = CharField(max_length=64, primary_key=True)
    data = BlobField()


def sample_identity(kind: str, level: float | None, vial: str | None,
                    level_label: str | None = None) -> str:
    """What a file says its sample is, as one comparable text: ``standard; level 3; vial 12``.

    Two files printing one sample name are one sample only when this agrees; a standard at
    level 3, one at level 2 and an unknown under one name are three samples.
    """
    parts = [kind]
    if level is not None:
        parts.append(f"level {level:g}")
    elif level_label and level_label.strip():
        parts.append(f"level {level_label.strip()}")
    if vial and vial.strip():
        parts.append(f"vial {vial.strip()}")
    return "; ".join(parts)


class Sample(BaseModel):
    """A sample, standard or blank within a job."""

    job = ForeignKeyField(Job, backref="samples", on_delete="CASCADE")
    sample_id = CharField()
    kind = CharField(help_text="sample | standard | blank | other")
    analyte = CharField(default="", help_text="analyte label; '' when the file names none")
    level = FloatField(null=True, help_text="nominal standard level as the file states it")
    identity = CharField(default="", help_text="what the files say the sample is (kind, level, "
                                               "vial): one name, several samples (migration 10)")

    class Meta:
        indexes = ((("job", "sample_id", "analyte", "identity"), True),)


class Injection(BaseModel):
    """One injection of a sample as read from one source file."""

    sample = ForeignKeyField(Sample, backref="injections", on_delete="CASCADE")
    source_file = ForeignKeyField(SourceFile, backref="injections", on_delete="RESTRICT")
    number = IntegerField(default=1)
    acquired_at = DateTimeField(null=True)
    # Not indexed alone (migration 14): nearly every row is current, so an index on the flag
    # matches the whole table, and SQLite's planner took it over the sample's own index.
    superseded = BooleanField(default=False)
    dilution_factor = FloatField(null=True, help_text="as the file states it (migration 4)")


class Peak(BaseModel):
    injection = ForeignKeyField(Injection, backref="peaks", on_delete="CASCADE")
    signal = CharField()
    number = IntegerField()
    rt_min = FloatField()
    area = FloatField()
    area_pct = FloatField(null=True)
    height = FloatField(null=True)
    begin_min = FloatField(null=True)
    end_min = FloatField(null=True)
    width_min = FloatField(null=True)
    peak_type = CharField(null=True)
    name = CharField(null=True)


class Chromatogram(BaseModel):
    """A detector trace; points packed as little-endian float64 times then values."""

    injection = ForeignKeyField(Injection, backref="chromatograms", on_delete="CASCADE")
    signal = CharField()
    detector = CharField(null=True)
    wavelength_nm = FloatField(null=True)
    points = IntegerField()
    time_unit = CharField(default="min")
    value_unit = CharField(null=True)
    t_start = FloatField()
    t_end = FloatField()
    data = BlobField()


class PeakDetail(BaseModel):
    """What a format prints of a peak beyond the common columns (ChemStation Result.xml's
    symmetry, baseline, amount; migration 12)."""

    peak = ForeignKeyField(Peak, primary_key=True, backref="detail", on_delete="CASCADE")
    symmetry = FloatField(null=True)
    baseline_start = FloatField(null=True)
    baseline_end = FloatField(null=True)
    amount = FloatField(null=True)
    amount_unit = CharField(null=True)


class Spectrum(BaseModel):
    """A detector's spectra over a run (a DAD's ``.UV``: time × wavelength), stored compactly
    and losslessly: see ``worker.parsers.base.Spectra`` for ``data``, and
    ``worker.results.spectra.read`` to get the values back (migration 12)."""

    injection = ForeignKeyField(Injection, backref="spectra", on_delete="CASCADE")
    source_file = ForeignKeyField(SourceFile, on_delete="RESTRICT",
                                  help_text="the file the spectra were read from")
    name = CharField(help_text="the signal as the file describes it")
    detector = CharField(null=True)
    frames = IntegerField()
    wavelength_count = IntegerField()
    t_start = FloatField(help_text="minutes")
    t_end = FloatField()
    wl_start = FloatField(help_text="nm")
    wl_end = FloatField()
    value_unit = CharField(null=True)
    value_type = CharField(help_text="i4 | i8: integer counts × scale; f8: the values")
    scale = FloatField(default=1.0)
    maximum = FloatField(null=True)
    times = BlobField(help_text="little-endian float64, minutes")
    wavelengths = BlobField(help_text="little-endian float64, nm")
    data = BlobField()


class InjectionFile(BaseModel):
    """Every file of an instrument folder, linked to the injection it belongs to, with what it
    contributed (``role``): report, signal, spectra, metadata, evidence or context
    (migration 12). Written by the file that writes the injection, for all its siblings."""

    injection = ForeignKeyField(Injection, backref="files", on_delete="CASCADE")
    source_file = ForeignKeyField(SourceFile, backref="links", on_delete="RESTRICT")
    role = CharField()
    note = TextField(null=True, help_text="why a file was not read, when it was not")

    class Meta:
        indexes = ((("source_file", "injection"), True),)


class InjectionDetail(BaseModel):
    """What an instrument folder says of its injection beyond the peaks (migration 12): the run
    facts from every file that states them, and flags (values that disagree between files, no
    integration report …), each naming what it saw."""

    injection = ForeignKeyField(Injection, primary_key=True, backref="detail",
                                on_delete="CASCADE")
    metadata = TextField(help_text="JSON object: fact -> {file: value}")
    flags = TextField(default="[]", help_text="JSON list of {flag, …}")


class Result(BaseModel):
    """One computed value for a sample, with its inputs and a step-by-step trace."""

    job = ForeignKeyField(Job, backref="results", on_delete="CASCADE")
    sample = ForeignKeyField(Sample, backref="results", null=True, on_delete="CASCADE")
    injection = ForeignKeyField(Injection, backref="results", null=True, on_delete="CASCADE")
    analyte = CharField(default="")
    kind = CharField(index=True)
    value = FloatField(null=True)
    text = CharField(null=True, help_text="non-numeric outcome, e.g. conforms / pass")
    unit = CharField(null=True)
    inputs = TextField(help_text="JSON")
    trace = TextField(help_text="JSON list of steps")
    flags = TextField(default="[]", help_text="JSON list")
    calc_version = CharField()
    computed_at = DateTimeField(default=utcnow)
    superseded = BooleanField(default=False)  # not indexed alone: see Injection.superseded


class AuditEvent(BaseModel):
    """The append-only, hash-chained audit trail."""

    seq = BigIntegerField(unique=True)
    at = CharField(help_text="UTC ISO-8601")
    host = CharField()
    pid = IntegerField()
    version = CharField()
    event = CharField(index=True)
    # Not indexed: a SHA-256 is a random key, and each event's insert into such an index
    # touched a random page of a tree that grows with the trail. A file's events are found by
    # its id (ordered like the trail) or through source_file's own sha256 index.
    sha256 = CharField(max_length=64, null=True)
    source_file_id = IntegerField(null=True, index=True)
    details = TextField(help_text="canonical JSON")
    prev_hash = CharField(max_length=64)
    hash = CharField(max_length=64)  # unique already through seq, which the hash covers


class Lease(BaseModel):
    """A named, expiring lock in the database: which process is the one scheduler (invariant 8)."""

    name = CharField(primary_key=True)
    owner = CharField()
    until = FloatField(help_text="epoch seconds")


class ProcessBeat(BaseModel):
    """A running process's heartbeat (heartbeat.py): a lease held by a process whose beat is
    stale is free, whichever machine it ran on."""

    owner = CharField(primary_key=True, help_text="host:pid, as in lease owners")
    role = CharField()
    node = CharField()
    beat_at = FloatField(help_text="epoch seconds by the database's clock")
    started_at = FloatField()

    class Meta:
        table_name = "process_heartbeat"


class EventCount(BaseModel):
    """Counters of ledger events (counters.py), bumped in the transaction of the event: they
    only go up, survive restarts and are read by a scrape without scanning the ledger."""

    name = CharField()
    label = CharField(default="")
    value = FloatField(default=0)

    class Meta:
        table_name = "event_count"
        primary_key = CompositeKey("name", "label")


class SchemaVersion(BaseModel):
    version = IntegerField(primary_key=True)
    description = CharField()
    applied_at = DateTimeField(default=utcnow)


TABLES = [Job, SourceFile, RawBlob, Sample, Injection, Peak, Chromatogram, Result, AuditEvent,
          Lease, ProcessBeat, EventCount, Spectrum, InjectionFile, InjectionDetail, PeakDetail]
