"""Reading stored spectra (``Spectrum`` rows) back as the instrument's values.

The stored form is described in ``worker.parsers.base.Spectra``; this is its one reader, for
the web view, exports and tests. numpy comes with rainbow-api (the ``instruments`` extra).
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

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
