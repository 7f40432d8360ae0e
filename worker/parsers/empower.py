"""Waters Empower raw chromatogram export (``.arw``).

Layout: one row of quoted field names, one row of quoted values (``"SampleName"``, ``"Channel"``,
``"Sample Set Name"``, ``"Instrument Method Name"`` …; the "long header" variant carries more fields
such as ``"Sample Set Finish Date"``), then ``time<TAB>value`` rows. Empower writes CR-only line
ends. Decisions, and why:

* **Claimed only with the header**: a bare two-column trace is the generic-trace parser's, and the
  quoted field row naming known Empower fields is what identifies an Empower export. (An unquoted
  field row is accepted at lower confidence when at least two field names are Empower's.)
* The export states no point count, so completeness is checked by what can be: every row has
  exactly two numbers, and the last row ends with a line end (a file cut off mid-number fails).
* PDA 3D exports (a ``Wavelength`` row followed by a time × wavelength matrix) are recognised and
  rejected with that reason: they are not a single chromatogram.
* Every header field goes to ``metadata`` under its own name; the well-known ones fill the typed
  fields. The wavelength is taken from the channel name when it states one (``… 280nm``); a
  fluorescence channel (``ex280/em350``) has none. Empower does not export the signal unit here.
"""

from __future__ import annotations

import re

from worker.parsers.base import (
    MIN_CONFIDENCE,
    NOT_MINE,
    ParsedFile,
    ParseError,
    Signal,
    Trace,
    validated,
)
from worker.parsers.dates import parse_timestamp
from worker.parsers.options import ParserOptions
from worker.parsers.text import (
    decode,
    lines_of,
    read_numeric_rows,
    require_line_end,
    sample_kind,
)

name = "empower"
version = "1.0.0"
display_name = "Waters Empower raw chromatogram export (.arw)"
extensions = (".arw", ".txt")

KNOWN_FIELDS = frozenset({
    "SampleName", "Sample Name", "Channel", "Channel Name", "Channel Description",
    "Sample Set Name", "Sample Set Start Date", "Sample Set Finish Date", "Instrument Method Name",
    "Processing Method", "Date Acquired", "Acquired By", "Vial", "Injection", "Sample Type",
    "Injection Volume", "Run Time", "System Name", "Result Id", "SampleSetId", "Project Name",
    "Level", "Label", "Sample Weight", "Dilution", "Sampling Rate"})
_WAVELENGTH = re.compile(r"(?<![\w/])(\d{3}(?:\.\d+)?)\s*nm\b", re.IGNORECASE)
_SNIFF_BYTES = 65536
_DIGITS = re.compile(r"\d+", re.ASCII)
_KINDS = (("standard", "standard"), ("blank", "blank"), ("unknown", "sample"),
          ("sample", "sample"))
# Quoted field and value rows of one width: the signature (95). An unquoted or uneven header
# naming Empower fields: its shape only (60).
_SIGNATURE, _SHAPE = 95, MIN_CONFIDENCE + 10


def _fields(line: str) -> tuple[list[str], bool]:
    """The TAB-separated cells of a header row unquoted, and whether every cell was quoted."""
    cells = line.split("\t")
    quoted = all(len(c) >= 2 and c[0] == c[-1] == '"' for c in cells)
    if quoted:
        return [c[1:-1].replace('""', '"') for c in cells], True
    return [c.strip() for c in cells], False


def sniff(data: bytes, filename: str, options: ParserOptions) -> int:
    """Confidence from the content: a field-name row and a value row of the same width."""
    head = data[:_SNIFF_BYTES].decode("latin-1")
    rows = head.splitlines()
    if len(rows) < 2:
        return NOT_MINE
    names, names_quoted = _fields(rows[0])
    known = len(KNOWN_FIELDS.intersection(names))
    if not known:
        return NOT_MINE  # every score needs an Empower field name
    values, values_quoted = _fields(rows[1])
    if names_quoted and known >= 1:
        return _SIGNATURE if values_quoted and len(values) == len(names) else _SHAPE
    if known >= 2 and len(values) == len(names):
        return _SHAPE
    return NOT_MINE


def parse(data: bytes, filename: str, options: ParserOptions) -> ParsedFile:
    """Header rows, then every ``time<TAB>value`` row."""
    text, encoding = decode(data, filename, configured=options.encoding_for(filename))
    lines = lines_of(text)
    if len(lines) < 2:
        raise ParseError("an Empower export needs a field-name row and a value row",
                         line=len(lines) or None)
    names, _ = _fields(lines[0])
    values, _ = _fields(lines[1])
    if len(values) != len(names):
        raise ParseError(f"the value row has {len(values)} fields, the field-name row "
                         f"{len(names)}", line=2)
    if not KNOWN_FIELDS.intersection(names):
        raise ParseError("the first row names no Empower field (SampleName, Channel …)", line=1)
    if len(lines) > 2 and lines[2].lstrip().lower().startswith("wavelength"):
        raise ParseError("a PDA 3D export (time × wavelength matrix) is not a single "
                         "chromatogram; export a 2D channel instead", line=3)
    metadata = dict(zip(names, values, strict=True))
    stop = len(lines)
    while stop > 2 and not lines[stop - 1].strip():
        stop -= 1
    if stop == 2:
        raise ParseError("the export has no data rows", line=2)
    require_line_end(text, stop)
    decimal_comma = "," in lines[2] and "." not in lines[2]
    times, signal_values = read_numeric_rows(
        lines, 3, stop + 1, ("time", "value"), keep=(0, 1), decimal_comma=decimal_comma)
    return _build(metadata, Trace(times=times, values=signal_values,
                                  value_unit=metadata.get("Channel Units") or None), encoding)


def _build(metadata: dict[str, str], trace: Trace, encoding: str) -> ParsedFile:
    def get(*keys: str) -> str | None:
        return next((metadata[k].strip() for k in keys if metadata.get(k, "").strip()), None)

    channel = get("Channel", "Channel Name", "Channel Description") or "channel"
    wavelength = _WAVELENGTH.search(channel)
    kind = sample_kind(get("Sample Type"), _KINDS)
    injection = get("Injection")
    acquired = get("Date Acquired")
    with validated("invalid content"):
        return ParsedFile(
            format=name, parser_version=version, encoding=encoding,
            sample_name=get("SampleName", "Sample Name"),
            injection=int(injection) if injection and _DIGITS.fullmatch(injection) else None,
            sample_kind=kind, vial=get("Vial"), instrument=get("System Name", "Instrument"),
            method=get("Instrument Method Name"), operator=get("Acquired By"),
            acquired_at=parse_timestamp(acquired) if acquired else None,
            injection_volume=get("Injection Volume"), metadata=metadata,
            signals=[Signal(name=channel, trace=trace,
                            wavelength_nm=float(wavelength[1]) if wavelength else None)])
