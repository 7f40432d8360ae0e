"""Reading stored spectra (``Spectrum`` rows) back as the instrument's values.

The stored form is described in ``worker.parsers.base.Spectra``; this is its one reader, for
the web view, exports and tests. numpy comes with rainbow-api (the ``instruments`` extra).
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from worker.parsers.base import Spectra
from worker.record.models import Spectrum


def matrix(value_type: str, scale: float, wavelengths: int, data: bytes) -> Any:
    """The [frames × wavelengths] float64 matrix of a stored ``data`` blob."""
    import numpy as np

    size = 8 if value_type in ("i8", "f8") else 4
    rows: list[Any] = []
    at = 0
    while at < len(data):
        frames, length = struct.unpack_from("<II", data, at)
        planes = zlib.decompress(data[at + 8:at + 8 + length])
        at += 8 + length
        raw = np.frombuffer(planes, "u1").reshape(size, -1).T.copy()
        rows.append(raw.view(f"<{value_type}").reshape(frames, wavelengths))
    whole = np.concatenate(rows) if rows else np.zeros((0, wavelengths))
    if value_type == "f8":
        return whole.astype(np.float64)
    return np.cumsum(whole.astype(np.int64), axis=0) * scale


def read(row: Spectrum) -> tuple[Any, Any, Any]:
    """(times in minutes, wavelengths in nm, values) of a stored spectrum row."""
    import numpy as np

    times = np.frombuffer(bytes(row.times), "<f8")
    wavelengths = np.frombuffer(bytes(row.wavelengths), "<f8")
    return times, wavelengths, matrix(row.value_type, row.scale, len(wavelengths),
                                      bytes(row.data))


def store(injection_id: int, source_file_id: int, spectra: Spectra) -> None:
    """One ``Spectrum`` row, in the caller's transaction."""
    Spectrum.create(
        injection=injection_id, source_file=source_file_id, name=spectra.name,
        detector=spectra.detector, frames=spectra.frames,
        wavelength_count=len(spectra.wavelengths), t_start=spectra.times[0],
        t_end=spectra.times[-1], wl_start=spectra.wavelengths[0],
        wl_end=spectra.wavelengths[-1], value_unit=spectra.value_unit,
        value_type=spectra.value_type, scale=spectra.scale, maximum=spectra.maximum,
        times=_le(spectra.times), wavelengths=_le(spectra.wavelengths), data=spectra.data)


def _le(values: object) -> bytes:
    import sys
    from array import array
    out = array("d", values)  # type: ignore[arg-type]
    if sys.byteorder != "little":
        out.byteswap()
    return out.tobytes()
