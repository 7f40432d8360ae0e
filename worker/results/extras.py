"""What a file holds beyond the rows every format has (injection, peaks, chromatograms): DAD
spectra (``spectrum``) and the peak columns only some formats print (``peak_detail``). Written
in the transaction of the file's injection, after its peaks."""

from __future__ import annotations

from typing import TypeGuard

from worker.parsers.base import DetailedPeak, ParsedFile
from worker.record import sql
from worker.record.models import Peak, PeakDetail
from worker.results import spectra

_DETAIL_COLUMNS = ("peak_id", "symmetry", "baseline_start", "baseline_end", "amount",
                   "amount_unit")


def wanted(parsed: ParsedFile) -> bool:
    return bool(parsed.spectra) or any(_detailed(p) for s in parsed.signals for p in s.peaks or ())


def _detailed(peak: object) -> TypeGuard[DetailedPeak]:
    # The type first: the peaks of most formats have no details, and are asked by the million.
    return isinstance(peak, DetailedPeak) and bool(peak.details)


def store(injection_id: int, row_id: int, parsed: ParsedFile) -> None:
    """The extras of a file ingested on its own, on its injection (once its peaks are
    written)."""
    for read in parsed.spectra:
        spectra.store(injection_id, row_id, read)
    peak_details(injection_id, parsed)


def peak_details(injection_id: int, parsed: ParsedFile) -> None:
    """``peak_detail`` rows for the injection's peaks that have any, matched to the peak rows
    in the order ingest wrote them (signal by signal, peak by peak)."""
    peaks = [p for s in parsed.signals for p in s.peaks or ()]
    if not any(_detailed(p) for p in peaks):
        return
    ids = [r.id for r in Peak.select(Peak.id).where(Peak.injection == injection_id)
           .order_by(Peak.id)]
    if len(ids) != len(peaks):
        raise RuntimeError(f"injection {injection_id} has {len(ids)} peak rows, its file "
                           f"{len(peaks)} peaks")
    sql.insert(PeakDetail, _DETAIL_COLUMNS, [
        (peak_id, p.symmetry, p.baseline_start, p.baseline_end, p.amount, p.amount_unit)
        for peak_id, p in zip(ids, peaks, strict=True) if _detailed(p)])
