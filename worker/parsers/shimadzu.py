"""Shimadzu LabSolutions / LCsolution ASCII export ("File Conversion: Convert to ASCII").

The file is a list of bracketed sections (``[Header]``, ``[Sample Information]``,
``[Peak Table(Detector A)]``, ``[LC Chromatogram(Detector A-Ch1)]``, ``[LC Status Trace(...)]`` …),
each a block of key/value lines or a small table, delimited by TAB or by comma (decided per file
from the ``[Header]`` block). Decisions, and why:

* **Peak tables** are checked against their ``# of Peaks`` line: a table that was cut short or
  edited by hand is rejected, never ingested with a peak missing. A table with 0 peaks is a valid
  signal with an empty peak list (the detector saw nothing integrable), not an error.
* **Area%** is not printed by Shimadzu; it is derived as area / sum of that table's areas × 100 so
  purity is comparable with vendors that print it. ``total_area`` is that sum.
* **Chromatogram values are kept as printed** (integers in the export's raw unit) rather than
  multiplied by ``Intensity Multiplier``: multiplying would change the numbers the file prints (and
  a multiplied float is not always the printed decimal). The unit is stated honestly instead:
  ``"mV"`` when the multiplier is 1, otherwise ``"<multiplier> <unit>"`` (e.g. ``"0.001 mV"``, the
  size of one count). Peak heights and areas are in the same raw unit, so trace and table agree.
* A chromatogram is paired with the peak table of the same detector (``Detector A-Ch1`` with
  ``Detector A`` when that detector has one channel); unpaired ones become signals of their own.
* **Status traces** (pump pressure, oven/cooler temperature …) are kept as signals — dropping them
  would silently lose rows — with ``detector="status"`` so chemistry can tell them from detector
  channels; their name is the one the file gives (``Pump A Pressure``).
* Every key/value line of every section goes to ``metadata`` as ``"<section>.<key>"``, so nothing
  the file says is lost; well-known ones also fill the typed fields.
* Encoding follows the PC's locale; a file that declares its code page (``Code Page``/``Encoding``
  line in a header section) is decoded with it first. Undecodable bytes reject the file.
* Sections this parser does not model (compound/group results, fraction report …) are listed in
  ``metadata["ignored_sections"]`` so it is visible what was not ingested.

Dates are read by ``dates.parse_timestamp`` and traces by ``text.read_numeric_rows``, which the
Chromeleon and Empower parsers share.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from worker.parsers.base import (
    MIN_CONFIDENCE,
    NOT_MINE,
    ParsedFile,
    ParseError,
    Peak,
    Signal,
    Trace,
    validated,
)
from worker.parsers.dates import acquisition
from worker.parsers.options import ParserOptions
from worker.parsers.text import (
    decode,
    lines_of,
    parse_number,
    read_numeric_rows,
    require_line_end,
    sample_kind,
)

name = "shimadzu"
version = "1.0.0"
display_name = "Shimadzu LabSolutions / LCsolution ASCII export"
extensions = (".txt", ".csv")

_SECTION = re.compile(r"^\[(?P<name>[^\[\]]+)\]\s*$")
_PEAK_TABLE = re.compile(r"^Peak Table\((?P<signal>.+)\)$")
_CHROMATOGRAM = re.compile(r"^(?:LC |GC )?Chromatogram\s*\((?P<signal>.+)\)$")
_STATUS = re.compile(r"^(?:LC |GC )?Status Trace\((?P<signal>.+)\)$")
_CHANNEL = re.compile(r"^(?P<base>.+)-Ch\d+$")
_DECLARED = re.compile(rb"^(?:Code ?Page|Encoding|Charset)[\t,][ \t]*([A-Za-z0-9_\-]+)[ \t]*\r?$",
                       re.MULTILINE | re.IGNORECASE)
_HEAD_BYTES = 65536
# A byte that is not blank read as Latin-1 (str.isspace: TAB … CR, FS … US, space, NEL, NBSP).
_LATIN1_INK = re.compile(rb"[^\t\n\x0b\x0c\r\x1c-\x20\x85\xa0]")
_KINDS = (("unknown", "sample"), ("standard", "standard"), ("blank", "blank"),
          ("control", "sample"))
# [Header] with LabSolutions' Application Name and a known section: the signature (95); [Header]
# and a known section (75); bracketed sections, two of them LabSolutions' (60).
_SIGNATURE, _HEADER, _SECTIONS = 95, MIN_CONFIDENCE + 25, MIN_CONFIDENCE + 10


@dataclass
class _Section:
    """One bracketed section: its name, the 1-based line of its title and its body lines."""

    name: str
    line: int
    body: list[str] = field(default_factory=list)


def sniff(data: bytes, filename: str, options: ParserOptions) -> int:
    """Confidence from the content: the bracketed ``[Header]`` layout with LabSolutions sections."""
    if not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        # Every score needs a first non-blank line starting with "[": read as Latin-1 (as
        # below), the first non-blank byte tells before anything is decoded or split.
        ink = _LATIN1_INK.search(data, 0, _HEAD_BYTES)
        if ink is None or data[ink.start()] != ord("["):
            return NOT_MINE
    lines = [line.strip() for line in _ascii_head(data).splitlines() if line.strip()]
    if not lines:
        return NOT_MINE
    titles = [line[1:-1] for line in lines if line.startswith("[") and line.endswith("]")]
    known = [t for t in titles if t in ("Sample Information", "Original Files", "Configuration")
             or _PEAK_TABLE.match(t) or _CHROMATOGRAM.match(t) or _STATUS.match(t)]
    if lines[0] == "[Header]" and known and any(
            line.startswith(("Application Name\t", "Application Name,")) for line in lines):
        return _SIGNATURE
    if lines[0] == "[Header]" and known:
        return _HEADER
    if lines[0].startswith("[") and len(known) >= 2:
        return _SECTIONS
    return NOT_MINE


def parse(data: bytes, filename: str, options: ParserOptions) -> ParsedFile:
    """Read every section; reject the file on the first row that cannot be read exactly."""
    text, encoding = decode(data, filename, declared=_declared_codepage(data),
                            configured=options.encoding_for(filename),
                         default=options.default_encoding)
    lines = lines_of(text)
    if lines and lines[-1].strip():
        require_line_end(text, len(lines), "last line")
    sections = _sections(lines)
    delimiter = _delimiter(sections)
    decimal_comma = delimiter == "\t" and _uses_decimal_comma(sections)
    metadata: dict[str, str] = {}
    tables: dict[str, tuple[list[Peak], float]] = {}
    traces: dict[str, tuple[Trace, bool]] = {}
    wavelengths: dict[str, float] = {}
    ignored: list[str] = []
    for section in sections:
        if m := _PEAK_TABLE.match(section.name):
            tables[m["signal"]] = _peak_table(section, delimiter, decimal_comma)
        elif (m := _CHROMATOGRAM.match(section.name)) or (m := _STATUS.match(section.name)):
            trace, header = _trace(section, delimiter, decimal_comma, lines)
            _add_metadata(metadata, section.name, header)
            traces[m["signal"]] = (trace, _STATUS.match(section.name) is not None)
            if (nm := _wavelength(header.get("Wavelength(nm)"), decimal_comma)) is not None:
                wavelengths[m["signal"]] = nm
        elif _is_key_value(section):
            _add_metadata(metadata, section.name, _key_values(section, delimiter))
        else:
            ignored.append(section.name)
    if ignored:
        metadata["ignored_sections"] = "; ".join(ignored)
    signals = _signals(tables, traces, wavelengths, _detector_names(metadata, delimiter))
    if not signals:
        raise ParseError("no peak table and no chromatogram section in the file",
                         line=len(lines) or None)
    return _build(encoding=encoding, metadata=metadata, signals=signals,
                  date_order=options.date_order)


def _ascii_head(data: bytes) -> str:
    """The first bytes as text for sniffing; UTF-16 exports are decoded, others read as Latin-1."""
    head = data[:_HEAD_BYTES]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="ignore").replace("\r", "\n")
    return head.decode("latin-1").replace("\r", "\n")


def _declared_codepage(data: bytes) -> str | None:
    """A code page the file states about itself (``Code Page<TAB>932``), as a codec name."""
    m = _DECLARED.search(data[:_HEAD_BYTES])
    if not m:
        return None
    value = m.group(1).decode("ascii")
    return f"cp{value}" if value.isdigit() else value


def _sections(lines: list[str]) -> list[_Section]:
    titles = [(i, m) for i, line in enumerate(lines)
              if line.startswith("[") and (m := _SECTION.match(line))]
    if not titles:
        raise ParseError("no [section] found; not a LabSolutions ASCII export", line=1)
    before = next((i for i in range(titles[0][0]) if lines[i].strip()), None)
    if before is not None:
        raise ParseError(f"text before the first [section]: {lines[before][:60]!r}",
                         line=before + 1)
    bounds = [i for i, _ in titles[1:]] + [len(lines)]
    return [_Section(m["name"].strip(), i + 1, lines[i + 1:stop])
            for (i, m), stop in zip(titles, bounds, strict=True)]


def _delimiter(sections: list[_Section]) -> str:
    """TAB or comma, from the first key/value line of the file (``Application Name<d>…``)."""
    for section in sections:
        for line in section.body:
            if line.strip():
                return "\t" if "\t" in line else ","
    return "\t"


def _uses_decimal_comma(sections: list[_Section]) -> bool:
    """A TAB file written in a decimal-comma locale: decided from the first chromatogram row."""
    for section in sections:
        if _CHROMATOGRAM.match(section.name) or _STATUS.match(section.name):
            for line in section.body:
                cells = line.split("\t")
                if len(cells) >= 2 and cells[0][:1].isdigit():
                    return "," in cells[0] and "." not in cells[0]
    return False


def _add_metadata(metadata: dict[str, str], section: str, values: dict[str, str]) -> None:
    for key, value in values.items():
        metadata[f"{section}.{key}"] = value


def _is_key_value(section: _Section) -> bool:
    """True for blocks of ``key<d>value`` lines (header, sample information …).

    Result tables this parser does not model start with a ``# of …`` count line followed by a
    header and rows; a lone ``# of IDs<d>0`` line is still a fact worth keeping as metadata.
    """
    rows = [line for line in section.body if line.strip()]
    return not (rows and rows[0].startswith("# of ") and len(rows) > 1)


def _key_values(section: _Section, delimiter: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in section.body:
        if line.strip():
            key, _, value = line.partition(delimiter)
            values[key.strip()] = value.strip()
    return values


def _body_line(section: _Section, index: int) -> int:
    """The file line number of ``section.body[index]``."""
    return section.line + 1 + index


def _peak_table(section: _Section, delimiter: str,
                decimal_comma: bool) -> tuple[list[Peak], float]:
    """The rows of one peak table, checked against its ``# of Peaks`` line."""
    body = section.body
    count_at = next((i for i, line in enumerate(body) if line.strip()), None)
    if count_at is None or not body[count_at].startswith("# of Peaks"):
        raise ParseError(f"[{section.name}] has no '# of Peaks' line", line=section.line)
    count_line = _body_line(section, count_at)
    count_cell = body[count_at].split(delimiter, 1)[1] if delimiter in body[count_at] else ""
    expected = parse_number(count_cell, what="# of Peaks", line=count_line)
    if expected != int(expected) or expected < 0:
        raise ParseError(f"# of Peaks {count_cell!r} is not a count", line=count_line)
    rest = body[count_at + 1:]
    end = next((i for i, line in enumerate(rest) if not line.strip()), len(rest))
    if any(line.strip() for line in rest[end:]):
        extra = next(i for i, line in enumerate(rest) if i >= end and line.strip())
        raise ParseError(f"[{section.name}]: unexpected text after the blank line ending the "
                         "table", line=_body_line(section, count_at + 1 + extra))
    if end == 0:
        if expected:
            raise ParseError(f"[{section.name}] states {int(expected)} peaks but has no header "
                             "or rows", line=count_line)
        return [], 0.0
    header = [cell.strip() for cell in rest[0].split(delimiter)]
    for required in ("Peak#", "R.Time", "Area"):
        if required not in header:
            raise ParseError(f"[{section.name}] header lacks the {required!r} column",
                             line=count_line + 1)
    rows = rest[1:end]
    if len(rows) != expected:
        raise ParseError(f"[{section.name}] states {int(expected)} peaks ('# of Peaks') but "
                         f"has {len(rows)} rows", line=count_line + 1 + len(rows) or count_line)
    peaks = [_peak(row, header, delimiter, decimal_comma, count_line + 2 + i)
             for i, row in enumerate(rows)]
    total = math.fsum(p.area for p in peaks)
    if total > 0:
        peaks = [p.model_copy(update={"area_pct": p.area / total * 100.0}) for p in peaks]
    return peaks, total


def _peak(row: str, header: list[str], delimiter: str, decimal_comma: bool, line: int) -> Peak:
    cells = row.split(delimiter)
    if len(cells) == len(header) + 1 and not cells[-1].strip():
        cells.pop()
    if len(cells) != len(header):
        raise ParseError(f"peak row has {len(cells)} cells, the header has {len(header)}",
                         line=line)
    row_map = dict(zip(header, cells, strict=True))

    def number(column: str) -> float | None:
        cell = row_map.get(column)
        if cell is None or not cell.strip():
            return None
        return parse_number(cell, decimal_comma=decimal_comma, what=column, line=line)

    peak_number = number("Peak#")
    if peak_number is None or peak_number != int(peak_number) or peak_number < 1:
        raise ParseError(f"Peak# {row_map['Peak#']!r} is not a peak number", line=line)
    rt, area = number("R.Time"), number("Area")
    if rt is None or area is None:
        raise ParseError("peak row lacks R.Time or Area", line=line)
    if area < 0:
        raise ParseError(f"negative peak area {row_map['Area'].strip()!r}", line=line)
    with validated("invalid peak row", line=line):
        return Peak(number=int(peak_number), rt_min=rt, area=area, height=number("Height"),
                    begin_min=number("I.Time"), end_min=number("F.Time"),
                    peak_type=(row_map.get("Mark") or "").strip() or None,
                    name=(row_map.get("Name") or "").strip() or None, line=line)


def _trace(section: _Section, delimiter: str, decimal_comma: bool,
           lines: list[str]) -> tuple[Trace, dict[str, str]]:
    """A chromatogram or status trace: key/value header, a column header line, then the points."""
    body = section.body
    header: dict[str, str] = {}
    header_lines: dict[str, int] = {}
    columns_at = None
    for i, line in enumerate(body):
        key, _, value = line.partition(delimiter)
        if key.strip().startswith("R.Time"):
            columns_at = i
            break
        if line.strip():
            header[key.strip()] = value.strip()
            header_lines[key.strip()] = _body_line(section, i)
    if columns_at is None:
        raise ParseError(f"[{section.name}] has no 'R.Time' column header line",
                         line=section.line)
    first = columns_at + 1
    end = body.index("", first) if "" in body[first:] else len(body)
    if any(line.strip() for line in body[end:]):
        extra = next(i for i in range(end, len(body)) if body[i].strip())
        raise ParseError(f"[{section.name}]: unexpected text after the blank line ending the "
                         "points", line=_body_line(section, extra))
    first_line = _body_line(section, first)
    last_line = _body_line(section, end) - 1
    times, values = read_numeric_rows(
        lines, first_line, last_line + 1, ("R.Time", "Intensity"), keep=(0, 1),
        delimiter=delimiter, decimal_comma=decimal_comma)
    stated = header.get("# of Points")
    if stated is not None:
        expected = parse_number(stated, what="# of Points", line=header_lines["# of Points"])
        if expected != len(times):
            raise ParseError(f"[{section.name}] states {stated} points ('# of Points') but has "
                             f"{len(times)} rows", line=last_line if times else first_line)
    if not times:
        raise ParseError(f"[{section.name}] has no points", line=first_line)
    unit = header.get("Intensity Units") or None
    multiplier = header.get("Intensity Multiplier")
    if unit and multiplier is not None:
        factor = parse_number(multiplier, decimal_comma=decimal_comma,
                              what="Intensity Multiplier", line=section.line)
        if factor != 1:
            unit = f"{multiplier} {unit}"
    return Trace(times=times, values=values, value_unit=unit), header


def _wavelength(text: str | None, decimal_comma: bool) -> float | None:
    """The detection wavelength, or None when the line is empty, holds only its unit (``nm``:
    an RI or conductivity detector has none) or anything else that is not a number: metadata
    that says nothing must never cost the file its peaks (the text stays in the metadata)."""
    if text is None:
        return None
    cell = text.strip()
    if cell.lower().endswith("nm"):
        cell = cell[:-2].strip()
    try:
        value = parse_number(cell, decimal_comma=decimal_comma, what="Wavelength(nm)")
    except ParseError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def _detector_names(metadata: dict[str, str], delimiter: str) -> dict[str, str]:
    """``Detector ID`` → ``Detector Name`` from [Configuration] (e.g. ``AD2`` → ``UV``)."""
    ids = metadata.get("Configuration.Detector ID", "").split(delimiter)
    names = metadata.get("Configuration.Detector Name", "").split(delimiter)
    if len(ids) != len(names):
        return {}
    return {i.strip(): n.strip() for i, n in zip(ids, names, strict=True) if i.strip()}


def _signals(tables: dict[str, tuple[list[Peak], float]], traces: dict[str, tuple[Trace, bool]],
             wavelengths: dict[str, float], detectors: dict[str, str]) -> list[Signal]:
    """Pair each chromatogram with its detector's peak table; the rest stand alone."""
    bases: dict[str, list[str]] = {}
    for trace_name in traces:
        if m := _CHANNEL.match(trace_name):
            bases.setdefault(m["base"], []).append(trace_name)
    paired: dict[str, str] = {}
    for trace_name, (_, is_status) in traces.items():
        if is_status:
            continue
        if trace_name in tables:
            paired[trace_name] = trace_name
        elif (m := _CHANNEL.match(trace_name)) and m["base"] in tables \
                and len(bases[m["base"]]) == 1:
            paired[trace_name] = m["base"]
    by_table = {table: trace for trace, table in paired.items()}
    signals: list[Signal] = []
    for table, (peaks, total) in tables.items():
        trace_name = by_table.get(table)
        detector_id = _CHANNEL.sub(r"\g<base>", table)
        signals.append(Signal(
            name=table, detector=detectors.get(detector_id, detector_id), peaks=peaks,
            total_area=total, trace=traces[trace_name][0] if trace_name else None,
            wavelength_nm=wavelengths.get(trace_name or table)))
    for trace_name, (trace, is_status) in traces.items():
        if trace_name in paired:
            continue
        detector_id = m["base"] if (m := _CHANNEL.match(trace_name)) else trace_name
        signals.append(Signal(
            name=trace_name, trace=trace, wavelength_nm=wavelengths.get(trace_name),
            detector="status" if is_status else detectors.get(detector_id, detector_id)))
    return signals


def _level_label(text: str | None) -> str | None:
    """LabSolutions' calibration level number; 0 (or nothing) is how it writes "no level"."""
    text = (text or "").strip()
    return None if text in ("", "0") else text


def _dilution(text: str | None) -> float | None:
    """The sample's dilution factor, when [Sample Information] states a usable one."""
    if not text or not text.strip():
        return None
    value = parse_number(text, decimal_comma="," in text, what="Dilution Factor")
    if value <= 0:
        raise ParseError(f"Dilution Factor {text!r} must be greater than 0")
    return value


def _build(*, encoding: str, metadata: dict[str, str], signals: list[Signal],
           date_order: str) -> ParsedFile:
    """The typed fields from [Sample Information], [Original Files] and [Configuration]."""
    info = {k.split(".", 1)[1]: v for k, v in metadata.items()
            if k.startswith(("Sample Information.", "Original Files.", "Configuration."))}
    kind = sample_kind(info.get("Sample Type"), _KINDS)
    dates = [v for k, v in metadata.items() if k.endswith(("Date", "Generated", "Modified",
                                                            "Acquired"))]
    acquired_at, date_flag = acquisition(info.get("Acquired"), others=dates,
                                         date_order=date_order)
    with validated("invalid content"):
        return ParsedFile(
            format=name, parser_version=version, encoding=encoding,
            sample_name=info.get("Sample Name") or None, sample_kind=kind,
            vial=info.get("Vial#") or None, level_label=_level_label(info.get("Level")),
            instrument=info.get("Instrument Name") or None,
            method=info.get("Method File") or None, operator=info.get("Operator Name") or None,
            acquired_at=acquired_at, injection_volume=info.get("Injection Volume") or None,
            dilution_factor=_dilution(info.get("Dilution Factor")),
            flags=[date_flag] if date_flag else [],
            metadata=metadata, signals=signals)
