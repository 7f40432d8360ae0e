"""Generated exports for the benchmark: OpenLab sequence folders and long DAD traces.

A sequence folder holds what one instrument run exports: five calibration standards in the
"Report" layout (the real corpus file's method preamble, then a peak table) and sample injections
in the "PeakData" layout (table, ``Sum`` row, blank line, ``Sample name:`` metadata). Every file
has its own values and so its own SHA-256; the same arguments always give the same bytes.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("ACCU_CORPUS", REPO / "tests" / "corpus"))
REPORT_TEMPLATE = Path("agilent-1290") / "100_Report.csv"
HEADER = "Height,Area,Area%,Peak Begin Time,Peak End Time,RT [min]"
LEVELS = (12, 25, 50, 100, 250)
SEQUENCE_SIZE = 50  # 5 standards (Report) + 45 sample injections (PeakData)
REPORT_FOLDER_SIZE = 20  # Report-only job folders: each of LEVELS injected 4 times
MAIN_RT = 7.62
TRACE_STEP_MIN = 0.05 / 60  # 20 Hz, as the corpus DAD exports


@dataclass(frozen=True)
class Export:
    folder: str  # the sequence folder: the worker makes it the file's Job
    name: str
    data: bytes

    @property
    def relpath(self) -> str:
        return f"{self.folder}/{self.name}"


class Workload:
    """Deterministic OpenLab exports; sequence numbers keep files of different phases distinct."""

    def __init__(self, corpus: Path = CORPUS, seed: int = 6) -> None:
        template = corpus / REPORT_TEMPLATE
        if not template.is_file():
            raise FileNotFoundError(f"{template} is missing: the Report layout is taken from the "
                                    "corpus (set ACCU_CORPUS to the folder holding agilent-1290/)")
        lines = template.read_text(encoding="utf-8").splitlines()
        self.preamble = lines[:lines.index(HEADER)]
        self.seed = seed

    def exports(self, n: int, first_sequence: int = 1) -> Iterator[Export]:
        """``n`` files in sequence folders of SEQUENCE_SIZE, numbered from ``first_sequence``."""
        seq = first_sequence
        while n > 0:
            for k in range(min(n, SEQUENCE_SIZE)):
                yield self.export(seq, k)
            n -= SEQUENCE_SIZE
            seq += 1

    def reports(self, n: int, first_folder: int = 1) -> Iterator[Export]:
        """``n`` Report-layout standards, REPORT_FOLDER_SIZE to a job folder: a lab whose every
        injection exports the full report, many runs at once."""
        folder_no = first_folder
        while n > 0:
            folder = f"RPT-{folder_no:05d} 20260114 091500"
            for k in range(min(n, REPORT_FOLDER_SIZE)):
                level, injection = LEVELS[k % len(LEVELS)], k // len(LEVELS) + 1
                rng = random.Random(f"{self.seed}:report:{folder_no}:{k}")
                name = f"{level}_Inj_{injection}_Report"
                yield Export(folder, f"{name}.csv", self._report(folder, name, level, rng))
            n -= REPORT_FOLDER_SIZE
            folder_no += 1

    def export(self, seq: int, k: int) -> Export:
        rng = random.Random(f"{self.seed}:{seq}:{k}")
        folder = f"SEQ-{seq:05d} 20260113 153049"
        if k < len(LEVELS):
            level = LEVELS[k]
            return Export(folder, f"{level}_Report.csv",
                          self._report(folder, f"{level}_Report", level, rng))
        sample, injection = divmod(k - len(LEVELS), 2)
        sample_name = f"P-{seq:05d}-{sample:02d}_Inj_{injection + 1}"
        return Export(folder, f"{sample_name}_PeakData.csv", self._peakdata(sample_name, rng))

    def _report(self, folder: str, name: str, level: int, rng: random.Random) -> bytes:
        preamble = [line if not line.startswith("Path:,") else
                    f"Path:,C:\\Results\\{folder}\\{name}.rslt" for line in self.preamble]
        table = _peak_table(rng, main_area=level * 4.1 * rng.uniform(0.98, 1.02))
        return "\n".join([*preamble, *table, ""]).encode("utf-8")

    def _peakdata(self, sample_name: str, rng: random.Random) -> bytes:
        table = _peak_table(rng, main_area=rng.uniform(50.0, 1000.0))
        return "\n".join([*table, "", f"Sample name:,{sample_name}", ""]).encode("utf-8")


def _peak_table(rng: random.Random, main_area: float) -> list[str]:
    """Header, 3–9 peak rows sorted by RT (one main peak near 7.62 min) and the Sum row.

    Areas are kept in units of 1e-4 so the printed Sum equals the printed rows exactly.
    """
    count = rng.randint(3, 9)
    areas = {round(MAIN_RT + rng.uniform(-0.03, 0.03), 3): round(main_area * 10_000)}
    while len(areas) < count:
        rt = round(rng.choice((rng.uniform(1.0, 7.2), rng.uniform(8.0, 15.0))), 3)
        areas.setdefault(rt, round(main_area * rng.uniform(0.002, 0.03) * 10_000))
    total = sum(areas.values())
    rows = [HEADER]
    for rt, units in sorted(areas.items()):
        half = rng.uniform(0.05, 0.2)
        rows.append(f"{units / 10_000 * 0.33:.4f},{_fixed4(units)},{units / total * 100:.4f},"
                    f"{rt - half:.3f},{rt + half * 1.3:.3f},{rt:.3f}")
    rows.append(f"Sum,{_fixed4(total)},,,,")
    return rows


def _fixed4(units: int) -> str:
    return f"{units // 10_000}.{units % 10_000:04d}"


def write(exports: Iterator[Export], staging: Path) -> dict[str, list[Export]]:
    """Write exports under ``staging/<folder>/``; returns them by folder."""
    folders: dict[str, list[Export]] = {}
    for export in exports:
        if export.folder not in folders:
            (staging / export.folder).mkdir(parents=True, exist_ok=True)
            folders[export.folder] = []
        (staging / export.folder / export.name).write_bytes(export.data)
        folders[export.folder].append(export)
    os.sync()  # written back now, not while the worker under test is fsyncing its own writes
    return folders


def trace(size_bytes: int, seed: int = 6) -> bytes:
    """A DAD trace like ``*.dx_DAD1A.CSV`` (no header, ``time,value`` in min and mAU), about
    ``size_bytes`` long: baseline noise with a peak every 25 minutes."""
    rng = random.Random(seed)
    lines: list[str] = []
    size = 0
    i = 0
    while size < size_bytes:
        t = (i + 1) * TRACE_STEP_MIN
        peak = 120.0 * math.exp(-(((t % 25.0) - MAIN_RT) / 0.05) ** 2)
        line = f"{t!r},{-0.21 + rng.gauss(0.0, 0.002) + peak!r}\n"
        lines.append(line)
        size += len(line)
        i += 1
    return "".join(lines).encode("ascii")


SPECTRA_TEMPLATE = Path("agilent-chemstation-folders") / "002-2-0312650-0713-BrPR.D" / "DAD1.UV"
_UV_FRAMES_AT, _UV_COUNT_AT = 0x1000, 0x116


def uv_spectra(corpus: Path, size_bytes: int) -> bytes:
    """A ChemStation ``.UV`` file of about ``size_bytes``, made of the real file's own frames
    (their delta-encoded absorbances untouched) repeated in order, each given the next time
    (the real file's sampling interval), and the header's frame count set to match: what a
    longer run of the same detector writes."""
    import struct

    real = (corpus / SPECTRA_TEMPLATE).read_bytes()
    frames: list[bytes] = []
    at = _UV_FRAMES_AT
    for _ in range(struct.unpack_from(">I", real, _UV_COUNT_AT)[0]):
        length = struct.unpack_from("<H", real, at + 2)[0]
        frames.append(real[at:at + length])
        at += length
    first = struct.unpack_from("<I", frames[0], 4)[0]
    step = struct.unpack_from("<I", frames[1], 4)[0] - first
    out = bytearray(real[:_UV_FRAMES_AT])
    count = 0
    while len(out) < size_bytes:
        frame = bytearray(frames[count % len(frames)])
        struct.pack_into("<I", frame, 4, first + count * step)
        out += frame
        count += 1
    struct.pack_into(">I", out, _UV_COUNT_AT, count)
    return bytes(out)
