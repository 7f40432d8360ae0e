"""The raw store keeps exact bytes under their SHA-256, durably, one pack per batch."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.record import store


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("fsync", [True, False])
def test_a_batch_goes_into_one_pack_and_two_copies_of_one_content_are_stored_once(
        tmp_path: Path, fsync: bool) -> None:
    a, b = b"first file\n", b"second file\r\n\x00binary"
    sha_a, sha_b = store.sha256_of(a), store.sha256_of(b)
    places = store.put_many(tmp_path, [(sha_a, a), (sha_b, b), (sha_a, a)], fsync=fsync)
    assert set(places) == {sha_a, sha_b}
    packs = _files(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in packs] == [places[sha_a].pack]
    assert places[sha_a].pack == places[sha_b].pack
    assert packs[0].read_bytes().count(b"accu-raw ") == 2
    assert store.get(tmp_path, sha_a, places[sha_a].pack, places[sha_a].offset) == a
    assert store.get(tmp_path, sha_b, places[sha_b].pack, places[sha_b].offset) == b


def test_a_pack_reads_without_the_database(tmp_path: Path) -> None:
    """Each record is a header line and the bytes: an auditor can walk a pack by hand."""
    blobs = [(store.sha256_of(d), d) for d in (b"one\n", b"", b"three\n" * 1000)]
    places = store.put_many(tmp_path, blobs)
    pack = (tmp_path / places[blobs[0][0]].pack).read_bytes()
    found, at = [], 0
    while at < len(pack):
        end = pack.index(b"\n", at)
        magic, sha, size = pack[at:end].split()
        assert magic == b"accu-raw"
        data = pack[end + 1:end + 1 + int(size)]
        assert store.sha256_of(data) == sha.decode()
        found.append((sha.decode(), data))
        at = end + 1 + int(size)
    assert found == blobs


def test_a_damaged_or_misplaced_record_is_refused(tmp_path: Path) -> None:
    data = b"bytes\n"
    sha = store.sha256_of(data)
    place = store.put(tmp_path, data, sha)
    other = store.sha256_of(b"other")
    with pytest.raises(store.StoreError, match="holds no record of"):
        store.get(tmp_path, other, place.pack, place.offset)
    with pytest.raises(store.StoreError, match="holds no record of"):
        store.get(tmp_path, sha, place.pack, place.offset + 1)
    pack = tmp_path / place.pack
    pack.write_bytes(pack.read_bytes().replace(b"bytes", b"BYTES"))  # same size, other content
    with pytest.raises(store.StoreError, match="does not match its SHA-256"):
        store.get(tmp_path, sha, place.pack, place.offset)
    pack.write_bytes(pack.read_bytes()[:-2])
    with pytest.raises(store.StoreError, match="cut short"):
        store.get(tmp_path, sha, place.pack, place.offset)
    with pytest.raises(FileNotFoundError):
        store.get(tmp_path, sha, "packs/2000-01-01/gone.pack", 0)


def test_a_store_from_before_packs_is_still_read(tmp_path: Path) -> None:
    data = b"kept one file per content\n"
    sha = store.sha256_of(data)
    store.path_for(tmp_path, sha).parent.mkdir()
    store.path_for(tmp_path, sha).write_bytes(data)
    assert store.has(tmp_path, sha)
    assert store.get(tmp_path, sha) == data


def test_an_unwritable_store_is_a_store_error_and_leaves_no_pack(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    root.mkdir()
    (root / store.PACKS).write_text("a file where the folder should be")
    with pytest.raises(store.StoreError, match="cannot store raw bytes"):
        store.put_many(root, [(store.sha256_of(b"x"), b"x")])
    assert _files(root) == [root / store.PACKS]


def test_a_copy_of_a_file_once_too_large_to_store_is_stored_for_its_row(tmp_path: Path) -> None:
    """A file rejected for its size was never stored; once the limit is raised, a copy of it
    that arrives is stored, and its (rejected) row says where, ready for ``retry``."""
    from worker.consume import ingest
    from worker.intake import watcher
    from worker.record import db, ledger
    from worker.record.models import AuditEvent, SourceFile
    from worker.settings import Settings

    data = b"Sample name:,S1\n" * 40
    tight = Settings(inbox=tmp_path / "inbox", data_dir=tmp_path / "data", max_file_mb=0.0002)
    tight.inbox.mkdir()
    database = db.open_database(tight)
    try:
        def take(settings: Settings, name: str) -> SourceFile:
            path = settings.inbox / name
            path.write_bytes(data)
            st = path.stat()
            cand = watcher.Candidate(st.st_size, st.st_mtime_ns, 0, 0)
            outcome = watcher.take_many(settings, [(path, name, cand)], ledger.owner_id())[0]
            assert isinstance(outcome, tuple)
            return SourceFile.get_by_id(outcome[0].id)

        first = take(tight, "S1_Report.csv")
        assert (first.state, first.raw_pack) == ("rejected", None)
        roomy = tight.model_copy(update={"max_file_mb": 512.0})
        again = take(roomy, "S1 copy_Report.csv")
        assert again.id == first.id and again.raw_pack is not None
        assert ingest.raw_bytes(roomy, again) == data
        events = [e.event for e in AuditEvent.select()
                  .where(AuditEvent.source_file_id == first.id).order_by(AuditEvent.seq)]
        assert events[-3:] == ["stored", "duplicate", "moved"]  # the copy left the inbox
    finally:
        database.close()


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=3000), min_size=1, max_size=8), st.data())
def test_a_reader_reads_each_record_whatever_size_it_is_told(
        blobs: list[bytes], data: st.DataObject) -> None:
    """``Packs`` reads a record in one call when told its size; told none, or a wrong one (or
    for a big file's record, whose header is padded), it reads the header first, as ``get``
    always did, and returns the same bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        places = store.put_many(root, [(store.sha256_of(b), b) for b in blobs], fsync=False)
        big = root / "big"
        big.write_bytes(blobs[0])
        padded = store.put_file(root, big, store.sha256_of(blobs[0]), len(blobs[0]),
                                fsync=False)
        with store.Packs(root) as packs:
            for blob in [*blobs, None]:
                sha = store.sha256_of(blobs[0] if blob is None else blob)
                place = padded if blob is None else places[sha]
                expected = blobs[0] if blob is None else blob
                told = data.draw(st.sampled_from(
                    [len(expected), None, len(expected) + 7, max(0, len(expected) - 3)]))
                assert packs.get(sha, place.pack, place.offset, told) == expected
                assert store.get(root, sha, place.pack, place.offset) == expected


@pytest.mark.parametrize("told", [None, 6, 5, 100])
def test_a_reader_refuses_a_damaged_or_misplaced_record(tmp_path: Path, told: int | None) -> None:
    data = b"bytes\n"
    sha = store.sha256_of(data)
    place = store.put(tmp_path, data, sha)
    pack = tmp_path / place.pack
    with store.Packs(tmp_path) as packs:
        with pytest.raises(store.StoreError, match="holds no record of"):
            packs.get(store.sha256_of(b"other"), place.pack, place.offset, told)
        with pytest.raises(store.StoreError, match="holds no record of"):
            packs.get(sha, place.pack, place.offset + 1, told)
        with pytest.raises(FileNotFoundError):
            packs.get(sha, "packs/2000-01-01/gone.pack", 0, told)
    pack.write_bytes(pack.read_bytes().replace(b"bytes", b"BYTES"))
    with store.Packs(tmp_path) as packs, pytest.raises(store.StoreError,
                                                       match="does not match its SHA-256"):
        packs.get(sha, place.pack, place.offset, told)
    pack.write_bytes(pack.read_bytes()[:-2])
    with store.Packs(tmp_path) as packs, pytest.raises(store.StoreError, match="cut short"):
        packs.get(sha, place.pack, place.offset, told)
