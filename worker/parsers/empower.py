"""Waters Empower raw chromatogram export (``.arw``).

Layout: one row of quoted field names, one row of quoted values (``"SampleName"``, ``"Channel"``,
``"Sample Set Name"``, ``"Instrument Method Name"`` …; the "long header" variant carries more fields
such as ``"Sample Set Finish Date"``), then ``time<TAB>value`` rows. Other Empower setups write the
same fields as ``"Key"<TAB>"Value"`` lines, one per field (``"SampleName"<TAB>"BF111"``,
``"System Name"``, ``"Sample Set Name"``, ``"Date Acquired"`` …), before the rows: both are read,
and a header that fits neither is rejected saying what was expected. Empower writes CR-only line
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
from worker.parsers.dates import acquisition
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
_DATA_ROW = re.compile(r"^\s*[+-]?[.,0-9]")
_SNIFF_ROWS = 64
# Where ``str.splitlines`` of the Latin-1 text ends the first line.
_FIRST_BREAK = re.compile(rb"[\n\r\x0b\x0c\x1c\x1d\x1e\x85]")
_LAYOUTS = ('expected either a row of quoted field names and a row of their values, or '
            '"Key"<TAB>"Value" lines (SampleName, System Name, Sample Set Name, Date Acquired …)')
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
    first = _FIRST_BREAK.search(data, 0, _SNIFF_BYTES)
    if first is not None:
        names, quoted = _fields(data[:first.start()].decode("latin-1"))
        if not (quoted and len(names) == 2) and KNOWN_FIELDS.isdisjoint(names):
            # Neither the first ``"Key"<TAB>"Value"`` line nor a row of field names: every
            # score needs one (and the lines below are not split).
            return NOT_MINE
    head = data[:_SNIFF_BYTES].decode("latin-1")
    rows = head.splitlines()
    if len(rows) < 2:
        return NOT_MINE
    if _key_value_header(rows[:_SNIFF_ROWS]):
        return _SIGNATURE
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
    """The header (two rows, or ``"Key"<TAB>"Value"`` lines), then every ``time<TAB>value`` row."""
    text, encoding = decode(data, filename, configured=options.encoding_for(filename),
                            default=options.default_encoding)
    lines = lines_of(text)
    if len(lines) < 2:
        raise ParseError("an Empower export needs a field-name row and a value row",
                         line=len(lines) or None)
    key_values = _key_value_header(lines)
    if key_values:
        metadata, first = key_values[0], key_values[1] + 1
    else:
        metadata = _two_row_header(lines)
        first = 3
    if len(lines) >= first and lines[first - 1].lstrip().lower().startswith("wavelength"):
        raise ParseError("a PDA 3D export (time × wavelength matrix) is not a single "
                         "chromatogram; export a 2D channel instead", line=first)
    stop = len(lines)
    while stop >= first and not lines[stop - 1].strip():
        stop -= 1
    if stop < first:
        raise ParseError("the export has no data rows", line=first - 1)
    if not _DATA_ROW.match(lines[first - 1]):
        raise ParseError(f"expected a time<TAB>value row after the header; {_LAYOUTS}",
                         line=first)
    require_line_end(text, stop)
    decimal_comma = "," in lines[first - 1] and "." not in lines[first - 1]
    times, signal_values = read_numeric_rows(
        lines, first, stop + 1, ("time", "value"), keep=(0, 1), decimal_comma=decimal_comma)
    return _build(metadata, Trace(times=times, values=signal_values,
                                  value_unit=metadata.get("Channel Units") or None), encoding,
                  options.date_order)


def _two_row_header(lines: list[str]) -> dict[str, str]:
    """The field-name row and the value row."""
    names, _ = _fields(lines[0])
    values, _ = _fields(lines[1])
    if len(values) != len(names):
        raise ParseError(f"the value row has {len(values)} fields, the field-name row "
                         f"{len(names)}; {_LAYOUTS}", line=2)
    if not KNOWN_FIELDS.intersection(names):
        raise ParseError(f"the first row names no Empower field (SampleName, Channel …); "
                         f"{_LAYOUTS}", line=1)
    return dict(zip(names, values, strict=True))


def _key_value_header(lines: list[str]) -> tuple[dict[str, str], int] | None:
    """The leading ``"Key"<TAB>"Value"`` lines as a dict and their count, when the file starts
    with them.

    Two quoted cells per line, at least two keys Empower's own, and not the two-row layout of a
    two-field export: its first row names fields in both cells, and only its two header rows
    are quoted. A third quoted line settles it for key/value lines, so a sample named after a
    field ("Acquired By") is still read as the sample's name."""
    header: dict[str, str] = {}
    count = 0
    for line in lines:
        cells, quoted = _fields(line)
        if not quoted or len(cells) != 2:
            break
        header.setdefault(cells[0], cells[1])
        count += 1
    if len(header) < 2 or len(KNOWN_FIELDS.intersection(header)) < 2:
        return None
    first_row, _ = _fields(lines[0])
    if first_row[1] in KNOWN_FIELDS and count < 3:
        return None
    return header, count


def _build(metadata: dict[str, str], trace: Trace, encoding: str, date_order: str) -> ParsedFile:
    def get(*keys: str) -> str | None:
        return next((metadata[k].strip() for k in keys if metadata.get(k, "").strip()), None)

    channel = get("Channel", "Channel Name", "Channel Description") or "channel"
    wavelength = _WAVELENGTH.search(channel)
    kind = sample_kind(get("Sample Type"), _KINDS)
    injection = get("Injection")
    acquired_at, date_flag = acquisition(
        get("Date Acquired"), date_order=date_order,
        others=[v for k, v in metadata.items() if "Date" in k])
    with validated("invalid content"):
        return ParsedFile(
            format=name, parser_version=version, encoding=encoding,
            sample_name=get("SampleName", "Sample Name"),
            injection=int(injection) if injection and _DIGITS.fullmatch(injection) else None,
            sample_kind=kind, vial=get("Vial"), instrument=get("System Name", "Instrument"),
            method=get("Instrument Method Name"), operator=get("Acquired By"),
            acquired_at=acquired_at, flags=[date_flag] if date_flag else [],
            injection_volume=get("Injection Volume"), metadata=metadata,
            signals=[Signal(name=channel, trace=trace,
                            wavelength_nm=float(wavelength[1]) if wavelength else None)])
