"""Agilent ChemStation / OpenLab CDS ChemStation Edition detector signal (``*.ch``): one channel
(FID, TCD, a DAD or VWD wavelength, ADC …) of one run, binary, read with rainbow-api.

The file opens with its format version as a length-prefixed text (``\\x03181``). rainbow-api
reads versions 30, 130, 179 and 181; any other is rejected with the version found, never
guessed. Its header says how long the file is in 512-byte blocks: a file shorter than that was
cut off (a copy interrupted, a run aborted) and is rejected. The header also names the sample
(ChemStation's "notebook"), the acquisition time, method, workstation and the signal's unit
and description; they become the run facts of the file.
"""

from __future__ import annotations

import math
import re
import struct
from array import array
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from worker.parsers import binary
from worker.parsers.base import ParsedFile, ParseError, Signal, Trace, validated
from worker.parsers.options import ParserOptions

name = "agilent-chemstation-ch"
version = "1.0"
display_name = "Agilent ChemStation signal (.ch)"
extensions = (".ch",)

VERSIONS = ("30", "130", "179", "181")
_BLOCKS_AT = 0x116  # big-endian uint32: the file's length in whole 512-byte blocks
_DETECTOR = re.compile(r"([A-Za-z]+)(\d*)([A-Z]?)$")
_SIG = re.compile(r"Sig=([0-9.]+)")
# The header texts kept (what every rainbow-api version reads the same).
_HEADER = ("notebook", "date", "method", "instrument", "unit", "signal")


def sniff(data: bytes, filename: str, options: ParserOptions) -> int:
    """98 for a version rainbow-api reads; 60 for another version in a ``.ch`` file (``parse``
    then names the version)."""
    return binary.sniff_version(data, filename, VERSIONS, ".ch")


def parse(data: bytes, filename: str, options: ParserOptions) -> ParsedFile:
    found = binary.pascal(data[:8])
    if found not in VERSIONS:
        raise ParseError(f"ChemStation signal file version {found!r}: not a version this "
                         f"worker reads ({', '.join(VERSIONS)})", filename=filename)
    if found != "30" and len(data) >= _BLOCKS_AT + 4:
        blocks = struct.unpack_from(">I", data, _BLOCKS_AT)[0]
        if len(data) < blocks * 512:
            raise ParseError(f"truncated: its header says {blocks * 512} bytes or more, the file "
                             f"has {len(data)}", filename=filename)
    chemstation = binary.library("rainbow.agilent.chemstation", "ChemStation .ch files",
                                 filename)
    with binary.on_disk(data, ".ch") as path:
        try:
            read = chemstation.parse_ch(path)
        except (struct.error, ValueError, IndexError, ZeroDivisionError, MemoryError,
                OverflowError) as exc:
            raise ParseError(f"cannot be read as a ChemStation version {found} signal file "
                             f"({type(exc).__name__}: {exc}); it may be truncated or damaged",
                             filename=filename) from None
    if read is None:
        raise ParseError(f"cannot be read as a ChemStation version {found} signal file: no "
                         "data points", filename=filename)
    times = [float(t) for t in read.xlabels]
    # Version 181's decoder yields one value past the last time: the times are the points.
    values = [float(v) for v in read.data[:len(times), 0]]
    if len(times) < 2 or len(values) != len(times):
        raise ParseError(f"{len(times)} times but {len(values)} values: truncated or damaged",
                         filename=filename)
    if not all(math.isfinite(v) for v in values):
        raise ParseError("values that are not numbers: damaged", filename=filename)
    meta: dict[str, Any] = read.metadata
    stem = PurePosixPath(filename.replace("\\", "/")).stem
    signal_name, detector, wavelength = describe_signal(stem, meta, read.detector)
    acquired = header_time(str(meta.get("date") or ""))
    with validated("signal", filename=filename):
        return ParsedFile(
            format=name, parser_version=version, encoding="binary",
            sample_name=meta.get("notebook") or None, instrument=meta.get("instrument"),
            method=meta.get("method"), acquired_at=acquired,
            metadata={f"ch_{k}": str(meta[k]) for k in _HEADER if meta.get(k)}
            | {"ch_version": found},
            signals=[Signal(name=signal_name, detector=detector, wavelength_nm=wavelength,
                            trace=Trace(times=array("d", times), values=array("d", values),
                                        value_unit=meta.get("unit") or None))])


def describe_signal(stem: str, meta: dict[str, Any],
                    fallback: str | None) -> tuple[str, str | None, float | None]:
    """(signal name, detector, wavelength) of a channel: the description it carries (``DAD1A,
    Sig=210,4 Ref=360,100``), else its file name as the report prints it (``FID1A`` →
    ``FID1 A``); the detector is the name's letters (FID, TCD, DAD …)."""
    match = _DETECTOR.match(stem)
    short = f"{match[1]}{match[2]} {match[3]}".strip() if match and match[3] else stem
    described = str(meta.get("signal") or "").strip()
    signal = described or short
    detector = match[1].upper() if match and match[3] else fallback
    sig = _SIG.search(described)
    return signal, detector, float(sig[1]) if sig else None


def header_time(text: str) -> datetime | None:
    """ChemStation's header time (``24-Jul-23, 21:52:10``), the instrument PC's local time;
    None when absent or spelled otherwise (the text stays in the metadata)."""
    try:
        return datetime.strptime(" ".join(text.split()), "%d-%b-%y, %H:%M:%S")
    except ValueError:
        return None
