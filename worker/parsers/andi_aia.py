"""AIA / ANDI chromatography netCDF (``*.cdf``, ASTM E1947): the vendor-neutral export that
ChemStation, OpenLab, Empower, Chromeleon, Star and others write.

Read: the peak table (``peak_retention_time`` in **seconds** in the file, stored in minutes;
``peak_area``, ``peak_height``, ``peak_width``, ``peak_name``; the value ``-1`` or ``-9999``
means "not measured" and is left empty; ``peak_amount`` is the Area% when the file's
``peak_processing_results_comments`` say the amounts are area percent), the signal
(``ordinate_values``, point ``i`` at ``actual_delay_time + i × actual_sampling_interval``
seconds) and the run facts (sample, operator, injection time, detector, units, method). An
ANDI mass-spectrometry file (ASTM E2077: ``mass_values``/``intensity_values``) is rejected
saying so: MS data is not read.

netCDF4 reads the bytes in memory (its ``memory=`` argument), so nothing is written to disk;
it came before ``scipy.io.netcdf_file`` for its install size (see the README).
"""

from __future__ import annotations

import math
import re
from array import array
from datetime import datetime
from typing import Any

from worker.parsers import binary
from worker.parsers.base import (
    CERTAIN,
    MIN_CONFIDENCE,
    NOT_MINE,
    ParsedFile,
    ParseError,
    Peak,
    Signal,
    Trace,
    validated,
)
from worker.parsers.options import ParserOptions

name = "andi-aia"
version = "1.0"
display_name = "AIA/ANDI chromatography netCDF (.cdf)"
extensions = (".cdf",)

_CLASSIC = (b"CDF\x01", b"CDF\x02")
_HDF5 = b"\x89HDF\r\n\x1a\n"
_NOT_MEASURED = (-1.0, -9999.0)


def sniff(data: bytes, filename: str, options: ParserOptions) -> int:
    """CERTAIN for netCDF whose header names the AIA chromatography variables; 90 for an ANDI
    MS file (``parse`` says why it is not read); 60 for other netCDF named ``.cdf``."""
    if not data.startswith(_CLASSIC) and not data.startswith(_HDF5):
        return NOT_MINE
    head = data[:65536]
    if b"ordinate_values" in head or b"peak_retention_time" in head:
        return CERTAIN
    if b"mass_values" in head or b"intensity_values" in head:
        return 90
    return MIN_CONFIDENCE + 10 if filename.lower().endswith(".cdf") else NOT_MINE


def parse(data: bytes, filename: str, options: ParserOptions) -> ParsedFile:
    netcdf = binary.library("netCDF4", "AIA/ANDI .cdf files", filename)
    try:
        dataset = netcdf.Dataset(filename or "aia.cdf", mode="r", memory=data)
    except (OSError, RuntimeError, ValueError, MemoryError) as exc:
        raise ParseError(f"cannot be read as netCDF ({exc}); truncated or damaged",
                         filename=filename) from None
    try:
        return _read(dataset, filename)
    except (OSError, RuntimeError, IndexError, KeyError) as exc:
        raise ParseError(f"cannot be read as netCDF ({type(exc).__name__}: {exc}); truncated "
                         "or damaged", filename=filename) from None
    finally:
        dataset.close()


def _read(ds: Any, filename: str) -> ParsedFile:
    variables = ds.variables
    facts = {k: str(ds.getncattr(k)).strip() for k in ds.ncattrs()}
    if "ordinate_values" not in variables and "peak_retention_time" not in variables:
        if "mass_values" in variables or "intensity_values" in variables:
            raise ParseError("an ANDI mass-spectrometry file (mass_values, intensity_values): "
                             "MS data is not read; export the chromatogram (AIA "
                             "chromatography, ordinate_values) instead", filename=filename)
        raise ParseError("netCDF without the AIA chromatography variables (ordinate_values, "
                         "peak_retention_time)", filename=filename)
    detector = facts.get("detector_name") or None
    unit = facts.get("detector_unit") or None
    signal_name = detector or "AIA signal"
    trace = None
    if "ordinate_values" in variables:
        values = _floats(variables["ordinate_values"])
        interval = _scalar(variables, "actual_sampling_interval")
        if interval is None or interval <= 0:
            raise ParseError("ordinate_values without a positive actual_sampling_interval: "
                             "the times cannot be known", filename=filename)
        delay = _scalar(variables, "actual_delay_time") or 0.0
        if values and all(math.isfinite(v) for v in values):
            trace = Trace(times=array("d", ((delay + i * interval) / 60.0
                                            for i in range(len(values)))),
                          values=array("d", values), value_unit=unit)
        elif values:
            raise ParseError("ordinate_values that are not numbers (fill values): damaged or "
                             "incomplete", filename=filename)
    peaks = _peaks(variables, facts, filename) if "peak_retention_time" in variables else None
    if trace is None and not peaks:
        raise ParseError("neither a signal (ordinate_values) nor peaks", filename=filename)
    injected = _timestamp(facts.get("injection_date_time_stamp", ""))
    kept = {k: v for k, v in sorted(facts.items()) if v and len(v) < 500}
    with validated("AIA file", filename=filename):
        return ParsedFile(
            format=name, parser_version=version, encoding="binary",
            sample_name=facts.get("sample_name") or None, operator=facts.get("operator_name")
            or None, method=facts.get("instrument_method_filename") or None,
            instrument=facts.get("dataset_owner") or None, acquired_at=injected,
            metadata=kept,
            signals=[Signal(name=signal_name, detector=detector,
                            wavelength_nm=_wavelength(facts.get("detector_method_comments")),
                            peaks=peaks or None, trace=trace)])


def _floats(variable: Any) -> list[float]:
    raw = variable[:]
    filled = raw.filled(float("nan")) if hasattr(raw, "filled") else raw
    return [float(v) for v in filled.ravel()]


def _scalar(variables: Any, key: str) -> float | None:
    if key not in variables:
        return None
    values = _floats(variables[key])
    return values[0] if values and math.isfinite(values[0]) else None


def _measured(value: float) -> float | None:
    return None if not math.isfinite(value) or value in _NOT_MEASURED else value


def _peaks(variables: Any, facts: dict[str, str], filename: str) -> list[Peak]:
    rts = _floats(variables["peak_retention_time"])
    columns = {key: _floats(variables[key]) if key in variables else [math.nan] * len(rts)
               for key in ("peak_area", "peak_height", "peak_width", "peak_amount")}
    names = _names(variables["peak_name"]) if "peak_name" in variables else []
    percent = "percent" in facts.get("peak_processing_results_comments", "").lower()
    peaks = []
    for i, rt in enumerate(rts):
        area = _measured(columns["peak_area"][i])
        if _measured(rt) is None or area is None:
            raise ParseError(f"peak {i + 1} has no retention time or area (-1 / -9999: not "
                             "measured)", filename=filename)
        width = _measured(columns["peak_width"][i])
        with validated(f"peak {i + 1}", filename=filename):
            peaks.append(Peak(number=i + 1, rt_min=rt / 60.0, area=area,
                              area_pct=_measured(columns["peak_amount"][i]) if percent else None,
                              height=_measured(columns["peak_height"][i]),
                              width_min=width / 60.0 if width is not None else None,
                              name=names[i] if i < len(names) and names[i] else None))
    return peaks


def _names(variable: Any) -> list[str]:
    raw = variable[:]
    rows = raw.filled(b"") if hasattr(raw, "filled") else raw
    return [b"".join(bytes(c) for c in row).rstrip(b"\x00 ").decode("latin-1").strip()
            for row in rows]


def _timestamp(text: str) -> datetime | None:
    """ASTM E1947's ``YYYYMMDDhhmmss±hhmm``, as the instrument's local time (the offset is
    kept in the metadata with the rest of the text)."""
    match = re.match(r"(\d{14})", text.strip())
    if not match:
        return None
    try:
        return datetime.strptime(match[1], "%Y%m%d%H%M%S")
    except ValueError:
        return None


def _wavelength(comment: str | None) -> float | None:
    match = re.search(r"(\d+(?:\.\d+)?)\s*nm", comment or "")
    return float(match[1]) if match else None
