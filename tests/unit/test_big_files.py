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


def test_a_file_that_no_longer_hashes_as_read_is_not_stored(tmp_path: Path) -> None:
    source = tmp_path / "growing.csv"
    source.write_bytes(b"1,2\n" * 1000)
    sha, size = store.hash_file(source)
    source.write_bytes(b"1,2\n" * 1001)  # written again between the hash and the copy
    root = tmp_path / "raw"
    try:
        store.put_file(root, source, sha, size)
    except store.Changed:
        pass
    else:
        raise AssertionError("a changed file was stored")
    assert not any(p.is_file() for p in root.rglob("*.pack"))


def test_only_an_aligned_record_is_mapped_and_a_damaged_one_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    source = tmp_path / "big.csv"
    source.write_bytes(b"0.1,2.5\n" * 5000)
    sha, size = store.hash_file(source)
    place = store.put_file(root, source, sha, size)
    with store.mapped(root, sha, place.pack, place.offset) as view:
        assert view is not None and view[:] == source.read_bytes()
    small = store.put_many(root, [(store.sha256_of(b"x"), b"x")])[store.sha256_of(b"x")]
    with store.mapped(root, store.sha256_of(b"x"), small.pack, small.offset) as view:
        assert view is None  # packed between others: read, not mapped
    pack = root / place.pack
    damaged = bytearray(pack.read_bytes())
    damaged[-2] ^= 1
    pack.write_bytes(bytes(damaged))
    try:
        with store.mapped(root, sha, place.pack, place.offset):
            raise AssertionError("a damaged record was mapped")
    except store.StoreError as exc:
        assert "does not match its SHA-256" in str(exc)
