"""Agilent ChemStation ``Result.xml``: the XML export a LIMS reads (root ``ChemStationResult``,
UTF-16): run facts (sample, operator, injection time, vial, injection volume, method,
instrument) and, per signal, every integrated peak with its retention time, area, Area%,
height, width, start and end, symmetry and baseline at start and end; the peak type, compound
name and amount (with its unit) come from its ``Results`` list.

Its ``checksum`` attribute (32 hex digits) is not the MD5 of the document in any spelling we
tried (with or without the attribute, the root's content only, UTF-16 or UTF-8, whitespace
kept or not): what it covers is not published, so it is kept in the metadata, not verified.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from worker.parsers.base import (
    CERTAIN,
    NOT_MINE,
    DetailedPeak,
    ParsedFile,
    ParseError,
    Signal,
    validated,
)
from worker.parsers.chemstation_ch import header_time
from worker.parsers.options import ParserOptions
from worker.parsers.text import decode

name = "agilent-chemstation-result-xml"
version = "1.0"
display_name = "Agilent ChemStation Result.xml"
extensions = (".xml",)

_ROOT = "ChemStationResult"
_ROOT_BYTES = (_ROOT.encode("utf-16-le"), _ROOT.encode())


def sniff(data: bytes, filename: str, options: ParserOptions) -> int:
    """CERTAIN when the first kilobytes hold the ``ChemStationResult`` root (UTF-16 or 8) and a
    ``<``, without which no element opens (an XML document starts with one: a declaration,
    a comment or its root), so the file could never parse."""
    head = data[:4096]
    # No generator: sniffed on every file. A "<" is the byte 3C in UTF-8 and UTF-16 alike: one
    # memchr lets go of most text files before the search for the name. The UTF-16 name holds
    # NUL bytes, which text in any other encoding has none of: one more memchr spares most
    # XML files that search. ``find``, not ``in``: ``in`` on bytes first tries the needle as an
    # int, and formats the error it clears.
    if head.find(b"<") >= 0 and (head.find(_ROOT_BYTES[1]) >= 0 or (
            head.find(b"\x00") >= 0 and head.find(_ROOT_BYTES[0]) >= 0)):
        return CERTAIN
    return NOT_MINE


def parse(data: bytes, filename: str, options: ParserOptions) -> ParsedFile:
    text, encoding = decode(data, filename)
    # The declaration names the encoding the bytes had; the text is already decoded.
    body = text[text.index("?>") + 2:] if text.lstrip().startswith("<?xml") else text
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise ParseError(f"not well-formed XML ({exc}); cut off or damaged",
                         line=exc.position[0], filename=filename) from None
    if root.tag != _ROOT:
        raise ParseError(f"root element {root.tag!r}, not {_ROOT!r}", filename=filename)
    info = root.find("SampleInformation")
    acq = root.find("Acquisition")

    def fact(node: ET.Element | None, tag: str) -> str | None:
        value = node.findtext(tag) if node is not None else None
        return value.strip() if value and value.strip() else None

    named = _named_peaks(root)
    signals = []
    for signal in root.iterfind("Chromatograms/Signal"):
        description = (signal.findtext("Description") or "").strip().rstrip(",").strip()
        peaks = []
        for number, row in enumerate(signal.iterfind("IntegrationResults"), start=1):
            rt = _number(row, "RetTime", filename)
            typed, compound, amount, unit = named.get((description, round(rt, 6)),
                                                      (None, None, None, None))
            with validated(f"peak {number} of {description}", filename=filename):
                peaks.append(DetailedPeak(number=number, rt_min=rt,
                                          area=_number(row, "Area", filename),
                                          area_pct=_number(row, "AreaPercent", filename),
                                          height=_number(row, "Height", filename),
                                          width_min=_number(row, "Width", filename),
                                          begin_min=_number(row, "TimeStart", filename),
                                          end_min=_number(row, "TimeEnd", filename),
                                          peak_type=typed, name=compound,
                                          symmetry=_optional(row, "Symmetry"),
                                          baseline_start=_optional(row, "BaselineStart"),
                                          baseline_end=_optional(row, "BaselineEnd"),
                                          amount=amount, amount_unit=unit))
        total = signal.findtext("IntegrationResults/AreaSum")
        with validated(f"signal {description}", filename=filename):
            signals.append(Signal(name=description or f"signal {len(signals) + 1}",
                                  detector=(signal.findtext("Detector") or "").strip() or None,
                                  peaks=peaks, total_area=float(total) if total else None))
    if not signals:
        raise ParseError("no Chromatograms/Signal element: no peak table", filename=filename)
    injection = fact(info, "Inj")
    metadata = {k: v for k, v in {
        "checksum": root.get("checksum"), "sample_info": fact(info, "SampleInfo"),
        "location": fact(info, "Location"), "sequence_line": fact(info, "SeqLine"),
        "chemstation_version": fact(acq, "Version"),
        "injection_date": fact(info, "InjectionDateTime")}.items() if v}
    dilution = fact(info, "Dilution")
    with validated("sample information", filename=filename):
        return ParsedFile(
            format=name, parser_version=version, encoding=encoding,
            sample_name=fact(info, "SampleName"),
            injection=int(injection) if injection and injection.isdigit() else None,
            vial=fact(info, "Location"), instrument=fact(info, "AcqInstName") or
            fact(acq, "InstrumentName"), method=fact(info, "Method"),
            operator=fact(info, "Operator"),
            acquired_at=header_time(fact(info, "InjectionDateTime") or ""),
            injection_volume=fact(info, "InjVolume"),
            dilution_factor=float(dilution) if dilution and float(dilution) > 0 else None,
            metadata=metadata, signals=signals)


def _number(row: ET.Element, tag: str, filename: str) -> float:
    text = row.findtext(tag)
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ParseError(f"<{tag}> is {text!r}, not a number", filename=filename) from None


Named = tuple[str | None, str | None, float | None, str | None]


def _optional(row: ET.Element, tag: str) -> float | None:
    text = row.findtext(tag)
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _named_peaks(root: ET.Element) -> dict[tuple[str, float], Named]:
    """(signal, RT) -> (peak type, compound name, amount, its unit) from the ``Results``
    list."""
    found = {}
    for peak in root.iterfind("Results/ResultsGroup/Peak"):
        signal = (peak.findtext("SignalDesc") or "").strip().rstrip(",").strip()
        rt = peak.findtext("MeasRetTime")
        if rt is None:
            continue
        try:
            key = (signal, round(float(rt), 6))
        except ValueError:
            continue
        amount = peak.find("Amount")
        try:
            value = float(amount.text) if amount is not None and amount.text else None
        except ValueError:
            value = None
        found[key] = ((peak.findtext("PeakType") or "").strip() or None,
                      (peak.findtext("Name") or "").strip() or None, value,
                      amount.get("Unit") if amount is not None else None)
    return found
