"""Agilent ChemStation diode-array spectra (``*.UV``): one absorbance spectrum per frame over
the run, binary, read with rainbow-api.

A DAD run of an hour writes hundreds of megabytes, so the file is read a slice of frames at a
time: each frame states its own length (the little-endian 16-bit word after its first two
bytes), the slices are handed to rainbow-api as files of their own (the header with the
slice's frame count), and each is encoded into the stored form (``base.Spectra``) before the
next is read. Memory stays that of the bytes and their compressed form, whatever the length of
the run. The frames the header counts must all lie whole in the file, else it was cut off or
damaged and is rejected.

Absorbances are stored as the file holds them, integer counts and one scale factor
(``value = count × scale``, the scale at 0xC0D as rainbow-api reads it), checked against
rainbow-api's own values: lossless. Version 31 and the OpenLab ``OL`` variant of 131 are read
whole by rainbow-api and stored as float64.
"""

from __future__ import annotations

import struct
import zlib
from array import array
from pathlib import PurePosixPath
from typing import Any

from worker.parsers import binary
from worker.parsers.base import ParsedFile, ParseError, Spectra, validated
from worker.parsers.chemstation_ch import header_time
from worker.parsers.options import ParserOptions

name = "agilent-chemstation-uv"
version = "1.0"
display_name = "Agilent ChemStation DAD spectra (.UV)"
extensions = (".uv",)
# A big run's file comes as the raw store's mmap: frames are read a slice at a time.
reads_slices = True

VERSIONS = ("31", "131")
_FRAMES_AT = 0x116  # big-endian uint32: how many frames (spectra) the run wrote
_SCALE_AT = 0xC0D  # big-endian float64 (version 131)
_DATA_AT = 0x1000  # the first frame (version 131)
_SLICE_BYTES = 4 * 1024 * 1024


def sniff(data: bytes, filename: str, options: ParserOptions) -> int:
    """98 for a version rainbow-api reads; 60 for another version in a ``.uv`` file (``parse``
    then names the version)."""
    return binary.sniff_version(data, filename, VERSIONS, ".uv")


def parse(data: bytes, filename: str, options: ParserOptions) -> ParsedFile:
    found = binary.pascal(data[:8])
    if found not in VERSIONS:
        raise ParseError(f"ChemStation spectra file version {found!r}: not a version this "
                         f"worker reads ({', '.join(VERSIONS)})", filename=filename)
    chemstation = binary.library("rainbow.agilent.chemstation", "ChemStation .UV files",
                                 filename)
    if len(data) < _DATA_AT + 22:
        raise ParseError(f"truncated: {len(data)} bytes, shorter than a header and one frame",
                         filename=filename)
    frames = struct.unpack_from(">I", data, _FRAMES_AT)[0]
    variant = data[348:352:2] if found == "131" else b""  # "LC" or "OL", UTF-16 at 347
    try:
        if found == "131" and variant == b"LC":
            spectra, meta = _sliced(chemstation, data, frames, filename)
        else:
            spectra, meta = _whole(chemstation, data, filename)
    except (struct.error, ValueError, IndexError, ZeroDivisionError, OverflowError) as exc:
        raise ParseError(f"cannot be read as ChemStation version {found} spectra "
                         f"({type(exc).__name__}: {exc}); damaged", filename=filename) from None
    with validated("spectra", filename=filename):
        return ParsedFile(
            format=name, parser_version=version, encoding="binary",
            sample_name=meta.get("notebook") or None, method=meta.get("method"),
            vial=meta.get("vialpos") or None, acquired_at=header_time(str(meta.get("date", ""))),
            metadata={f"uv_{k}": str(meta[k]) for k in ("notebook", "date", "method", "unit",
                                                         "signal", "vialpos") if meta.get(k)}
            | {"uv_version": found},
            signals=[], spectra=[spectra.model_copy(update={
                "name": str(meta.get("signal") or PurePosixPath(filename).stem)})])


def _frame_offsets(data: bytes, frames: int, filename: str) -> list[int]:
    """Where each of the ``frames`` frames starts, and where the last ends; each must lie whole
    inside the file (what follows them, an index of the frames, is not read)."""
    offsets: list[int] = []
    at = _DATA_AT
    for number in range(1, frames + 1):
        length = struct.unpack_from("<H", data, at + 2)[0] if at + 4 <= len(data) else 0
        if at + max(length, 22) > len(data):
            raise ParseError(f"truncated: the header says {frames} spectra, the file ends in "
                             f"frame {number} ({len(data)} bytes)", filename=filename)
        if length < 22:
            raise ParseError(f"frame {number} at byte {at} states a length of {length}: "
                             "damaged", filename=filename)
        offsets.append(at)
        at += length
    return [*offsets, at]


def _sliced(chemstation: Any, data: bytes, frames: int,
            filename: str) -> tuple[Spectra, dict[str, Any]]:
    offsets = _frame_offsets(data, frames, filename)
    scale = struct.unpack_from(">d", data, _SCALE_AT)[0]
    header = bytearray(data[:_DATA_AT])
    times = array("d")
    wavelengths: array | None = None
    parts: list[bytes] = []
    previous = None
    value_type = "i4"
    best: tuple[float, float, float] | None = None
    meta: dict[str, Any] = {}
    import numpy as np  # rainbow-api's own dependency

    start = 0
    while start < frames:
        stop = start + 1
        while stop < frames and offsets[stop + 1] - offsets[start] <= _SLICE_BYTES:
            stop += 1
        struct.pack_into(">I", header, _FRAMES_AT, stop - start)
        with binary.on_disk(bytes(header) + data[offsets[start]:offsets[stop]], ".uv") as path:
            read = chemstation.parse_uv(path)
        if read is None:
            raise ParseError(f"frames {start + 1}…{stop} cannot be read", filename=filename)
        if wavelengths is None:
            wavelengths = array("d", (float(w) for w in read.ylabels))
            meta = dict(read.metadata)
        elif len(read.ylabels) != len(wavelengths):
            raise ParseError(f"frames {start + 1}…{stop} have {len(read.ylabels)} wavelengths, "
                             f"the first {len(wavelengths)}", filename=filename)
        values = read.data
        counts = np.rint(values / scale)
        if not np.array_equal(counts * scale, values):
            raise ParseError("absorbances that are not whole multiples of the file's scale "
                             f"{scale!r}: damaged", filename=filename)
        counts = counts.astype(np.int64)
        if value_type == "i4" and (counts.min(initial=0) < -2**31 or
                                   counts.max(initial=0) >= 2**31):
            raise ParseError("counts beyond 32 bits: not a DAD spectrum", filename=filename)
        top = np.unravel_index(int(values.argmax()), values.shape)
        if best is None or values[top] > best[0]:
            best = (float(values[top]), float(read.xlabels[top[0]]),
                    float(wavelengths[top[1]]))
        deltas = np.diff(counts, axis=0, prepend=previous if previous is not None
                         else np.zeros((1, counts.shape[1]), dtype=np.int64))
        previous = counts[-1:]
        parts.append(block(deltas.astype("<i4")))
        times.extend(float(t) for t in read.xlabels)
        start = stop
    assert wavelengths is not None and best is not None
    return Spectra(name="", detector="DAD", times=times, wavelengths=wavelengths,
                   value_type=value_type, scale=scale, value_unit=meta.get("unit") or None,
                   data=b"".join(parts), maximum=best[0],
                   maximum_at=(best[1], best[2])), meta


def _whole(chemstation: Any, data: bytes, filename: str) -> tuple[Spectra, dict[str, Any]]:
    import numpy as np

    with binary.on_disk(data, ".uv") as path:
        read = chemstation.parse_uv(path)
    if read is None or read.data.size == 0:
        raise ParseError("no spectra could be read", filename=filename)
    values = np.ascontiguousarray(read.data, dtype="<f8")
    top = np.unravel_index(int(values.argmax()), values.shape)
    return Spectra(name="", detector="DAD", times=array("d", map(float, read.xlabels)),
                   wavelengths=array("d", map(float, read.ylabels)), value_type="f8",
                   value_unit=read.metadata.get("unit") or None,
                   data=block(values), maximum=float(values[top]),
                   maximum_at=(float(read.xlabels[top[0]]), float(read.ylabels[top[1]]))
                   ), dict(read.metadata)


def block(rows: Any) -> bytes:
    """One stored block of a 2-D little-endian array (see ``base.Spectra``)."""
    planes = rows.view("u1").reshape(-1, rows.dtype.itemsize).T.tobytes()
    packed = zlib.compress(planes, 1)  # level 6: 8 % smaller, 2.6 times slower
    return struct.pack("<II", rows.shape[0], len(packed)) + packed
