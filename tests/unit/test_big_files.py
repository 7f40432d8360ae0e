"""Big files through the real path (watcher's take, raw store, consumer) without being read
whole: hashed and stored a chunk at a time, mapped by the consumer, rejected by a limit with
the setting named."""

from __future__ import annotations

import math
from pathlib import Path

from support.pipeline import Pipeline

from worker.record import store
from worker.record.models import Chromatogram, Injection, SourceFile


def _trace(size: int) -> bytes:
    rows, total, i = [], 0, 0
    while total < size:
        i += 1
        row = f"{i / 1200:.12f},{math.sin(i / 500) * 40:.9f}\n"
        rows.append(row)
        total += len(row)
    return "".join(rows).encode("ascii")


def test_a_big_trace_is_stored_in_chunks_mapped_and_ingested(pipeline: Pipeline) -> None:
    data = _trace(store.STREAM_BYTES + 3_000_000)
    row = pipeline.run("BIG_Std.dx_DAD1A.CSV", data)

    assert row.state == "ingested", row.error
    assert row.sha256 == store.sha256_of(data)
    # A pack of its own, the bytes at a boundary where they can be mapped.
    pack = pipeline.settings.raw_dir / row.raw_pack
    assert row.raw_offset == 0 and pack.stat().st_size == store.ALIGN + len(data)
    assert store.get(pipeline.settings.raw_dir, row.sha256, row.raw_pack, 0) == data
    [chromatogram] = Chromatogram.select().join(Injection).where(
        Injection.source_file == row.id)
    assert chromatogram.points == data.count(b"\n")


def test_a_big_file_no_parser_reads_is_rejected_from_its_head(pipeline: Pipeline) -> None:
    data = b"not an export\n" * (store.STREAM_BYTES // 14 + 1000)
    row = pipeline.run("junk.txt", data)
    assert row.state == "rejected"
    assert row.error is not None and "unrecognised format" in row.error


def test_a_trace_over_max_trace_points_is_rejected_naming_the_setting(
        pipeline: Pipeline, tmp_path: Path) -> None:
    pipeline.settings = pipeline.settings.model_copy(update={"max_trace_points": 10_000})
    row = pipeline.run("LONG.dx_DAD1A.CSV", _trace(1_000_000))
    assert row.state == "rejected"
    assert row.error is not None and "max_trace_points = 10000" in row.error
    assert SourceFile.get_by_id(row.id).error_line is not None
