"""The raw store keeps exact bytes under their SHA-256, durably, whatever a batch holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker import store


def _files(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("fsync", [True, False])
def test_a_batch_with_two_copies_of_one_content_stores_it_once(tmp_path: Path,
                                                               fsync: bool) -> None:
    a, b = b"first file\n", b"second file\n"
    sha_a, sha_b = store.sha256_of(a), store.sha256_of(b)
    store.put_many(tmp_path, [(sha_a, a), (sha_b, b), (sha_a, a)], fsync=fsync)
    assert _files(tmp_path) == sorted([sha_a, sha_b])  # no temporary file left behind
    assert store.get(tmp_path, sha_a) == a and store.get(tmp_path, sha_b) == b


def test_storing_again_keeps_the_first_copy_and_a_damaged_copy_is_refused(
        tmp_path: Path) -> None:
    data = b"bytes\n"
    sha = store.sha256_of(data)
    path = store.put(tmp_path, data, sha)
    store.put_many(tmp_path, [(sha, data)])
    assert _files(tmp_path) == [sha]
    path.write_bytes(b"BYTES\n")  # same size, other content
    with pytest.raises(store.StoreError, match="does not match its SHA-256"):
        store.get(tmp_path, sha)


def test_an_unwritable_store_is_a_store_error_and_leaves_no_temporary_file(
        tmp_path: Path) -> None:
    root = tmp_path / "raw"
    root.mkdir()
    (root / "ab").write_text("a file where the folder should be")
    sha = "ab" + "0" * 62
    with pytest.raises(store.StoreError, match="cannot store raw bytes"):
        store.put_many(root, [(sha, b"x")])
    assert _files(root) == ["ab"]
