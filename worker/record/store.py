"""Raw store: the exact bytes of every file, kept before anything else happens.

The files of one intake batch are appended to one new pack file (``raw/packs/<day>/….pack``),
which is flushed to disk, with its folder, before ``put_many`` returns; the ledger row of each
file then records its pack and offset, so bytes are on disk before any row points at them. A
pack is never written again. Each record is a header line ``accu-raw <sha256> <size>`` and the
bytes, so a pack can be read (and checked) without the database.

One file per content cost a new file for every file ingested, and creating a file is the
dearest thing a file system does: ~0.4 ms of kernel time each on the benchmark machine, a third
of the watcher's CPU in a burst (and slower still where an antivirus scans each new file). A
pack costs one per batch.

Stores written before packs keep one file per content under ``raw/ab/<sha256>``; rows without a
pack are read from there.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from hashlib import sha256 as _sha256
from pathlib import Path
from typing import BinaryIO

PACKS = "packs"
MAGIC = b"accu-raw"
# A big file is copied into a pack of its own, its header padded with blanks so its bytes start
# at a boundary where they can be mapped (mmap) in place of being read into memory.
ALIGN = mmap.ALLOCATIONGRANULARITY
_HEADER_MAX = ALIGN  # magic, 64 hex digits, a size, blanks up to ALIGN
COPY_BYTES = 1 << 20
# Files bigger than this are hashed and stored a chunk at a time at intake, and mapped rather
# than read by the consumer.
STREAM_BYTES = 16 * 1024 * 1024


class StoreError(Exception):
    """The raw bytes could not be stored or read back (disk full, permissions, damage);
    transient from our side."""


@dataclass(frozen=True)
class Location:
    """Where a content's bytes are: a pack (relative to the store, POSIX separators) and the
    offset of its record there."""

    pack: str
    offset: int


def sha256_of(data: bytes) -> str:
    return _sha256(data).hexdigest()


def path_for(root: Path, sha256: str) -> Path:
    """Where a store from before packs kept one content (read only)."""
    return root / sha256[:2] / sha256


def put(root: Path, data: bytes, sha256: str, fsync: bool = True) -> Location:
    """Store ``data`` (whose digest is ``sha256``) durably; returns where."""
    return put_many(root, [(sha256, data)], fsync)[sha256]


class Changed(StoreError):
    """The file no longer hashes to the digest it had a moment before: it is being written."""


# O_NONBLOCK: a pipe put where a file was a moment before must not hang the reader (a regular
# file's reads ignore it). O_BINARY: Windows would otherwise translate line ends.
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def read_whole(path: str | Path, size: int) -> bytes:
    """A file expected to hold ``size`` bytes: all of them, or ``size + 1`` when it holds more
    (the caller sees the length differ either way).

    Plain descriptor reads: ``open()`` adds a buffered reader, a terminal check and two status
    calls to each file, and a burst reads thousands.
    """
    fd = os.open(path, _READ_FLAGS)
    try:
        parts: list[bytes] = []
        left = size + 1
        while left > 0:  # one read to the end, unless the file system reads in pieces
            block = os.read(fd, left)
            if not block:
                break
            parts.append(block)
            left -= len(block)
    finally:
        os.close(fd)
    return b"".join(parts)


def hash_file(path: str | Path) -> tuple[str, int]:
    """(SHA-256, size) of a file read a chunk at a time, whatever its size."""
    digest = _sha256()
    size = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(COPY_BYTES), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def put_file(root: Path, path: str | Path, sha256: str, size: int,
             fsync: bool = True) -> Location:
    """Copy a big file into a new pack of its own a chunk at a time, hashing as it goes.

    Changed when the bytes copied are not ``size`` bytes hashing to ``sha256`` (the file was
    written meanwhile): nothing is then stored.
    """
    folder, name = _new_pack(root)
    target = folder / name
    created = False
    try:
        with open(path, "rb") as src, open(target, "xb") as fh:
            created = True
            header = b"%s %s %d" % (MAGIC, sha256.encode("ascii"), size)
            fh.write(header + b" " * (ALIGN - len(header) - 1) + b"\n")
            digest, copied = _sha256(), 0
            for chunk in iter(lambda: src.read(COPY_BYTES), b""):
                digest.update(chunk)
                fh.write(chunk)
                copied += len(chunk)
            if copied != size or digest.hexdigest() != sha256:
                raise Changed(f"{path} changed while it was being stored")
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        if fsync:
            _fsync_new(root, folder)
    except BaseException as exc:
        if created:
            with contextlib.suppress(OSError):
                target.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
            raise StoreError(f"cannot store raw bytes under {root}: {exc}") from exc
        raise
    return Location(f"{PACKS}/{folder.name}/{name}", 0)


def _new_pack(root: Path) -> tuple[Path, str]:
    day = time.strftime("%Y-%m-%d", time.gmtime())
    folder = root / PACKS / day
    folder.mkdir(parents=True, exist_ok=True)
    return folder, f"{time.strftime('%H%M%S', time.gmtime())}-{os.getpid()}-" \
                   f"{secrets.token_hex(4)}.pack"


def _fsync_new(root: Path, folder: Path) -> None:
    fsync_dir(folder)
    fsync_dir(folder.parent)
    fsync_dir(root)


@contextlib.contextmanager
def mapped(root: Path, sha256: str, pack: str | None,
           offset: int | None) -> Iterator[mmap.mmap | None]:
    """The stored bytes of a big file as a read-only mmap (its pages are the file's, read on
    demand: memory is not spent on them), checked against their digest a chunk at a time; None
    where the record cannot be mapped (a small file's record, stored between others)."""
    if pack is None:
        yield None
        return
    with open(root / pack, "rb") as fh:
        size = _header(fh, root / pack, sha256, offset or 0)
        start = fh.tell()
        if start % ALIGN:
            yield None
            return
        _check_record(fh, root / pack, sha256, size, COPY_BYTES)
        with mmap.mmap(fh.fileno(), size, offset=start, access=mmap.ACCESS_READ) as view:
            yield view


def put_many(root: Path, blobs: Sequence[tuple[str, bytes]],
             fsync: bool = True) -> dict[str, Location]:
    """Store a batch of (sha256, data) durably in one new pack; returns each content's place.

    Two copies of one content in the batch are stored once. A pack that could not be written
    whole is removed, so nothing ever points into a torn one.
    """
    contents = dict(blobs)
    if not contents:
        return {}
    day = time.strftime("%Y-%m-%d", time.gmtime())
    folder = root / PACKS / day
    name = f"{time.strftime('%H%M%S', time.gmtime())}-{os.getpid()}-{secrets.token_hex(4)}.pack"
    path = folder / name
    where: dict[str, Location] = {}
    created = False
    try:
        new_folder = not folder.is_dir()
        if new_folder:
            folder.mkdir(parents=True, exist_ok=True)
        with open(path, "xb") as fh:
            created = True
            offset = 0
            for sha, data in contents.items():
                header = _header_line(sha, len(data))
                fh.write(header)
                fh.write(data)
                where[sha] = Location(f"{PACKS}/{day}/{name}", offset)
                offset += len(header) + len(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        if fsync:
            fsync_dir(folder)
            if new_folder:
                fsync_dir(folder.parent)
                fsync_dir(root)
    except OSError as exc:
        if created:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        raise StoreError(f"cannot store raw bytes under {root}: {exc}") from exc
    return where


def get(root: Path, sha256: str, pack: str | None = None, offset: int | None = None,
        size: int | None = None) -> bytes:
    """The stored bytes, checked against their digest so a damaged copy is never used.

    FileNotFoundError when this store does not have them (a consumer on another machine reads
    them from the database instead); StoreError when what is there is not them. ``size``, the
    size the ledger records, lets a pack's record be read in one call (see ``Packs``).
    """
    with Packs(root) as packs:
        return packs.get(sha256, pack, offset, size)


class Packs:
    """Reads stored bytes, each pack opened once: the files of a consumer's chunk lie in the
    few packs their intake batches wrote, and opening a pack for each file, then seeking and
    reading its header and its bytes through a buffered file, cost several calls to the
    system per file. A record is read with one positioned read when its size is known."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._open: dict[str, int] = {}

    def __enter__(self) -> Packs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        opened, self._open = self._open, {}
        for fd in opened.values():
            os.close(fd)

    def get(self, sha256: str, pack: str | None = None, offset: int | None = None,
            size: int | None = None) -> bytes:
        """``store.get``, from the packs this reader holds open."""
        if pack is None:
            data = path_for(self.root, sha256).read_bytes()
        else:
            fd = self._open.get(pack)
            if fd is None:
                fd = self._open[pack] = os.open(self.root / pack, _READ_FLAGS)
            data = _read_record_at(fd, self.root / pack, sha256, offset or 0, size)
        if sha256_of(data) != sha256:
            raise StoreError(f"stored copy of {sha256[:12]}… does not match its SHA-256")
        return data


def has(root: Path, sha256: str, pack: str | None = None) -> bool:
    """Whether this store holds a copy where the ledger says (not checked: ``get`` does)."""
    return (root / pack).is_file() if pack is not None else path_for(root, sha256).is_file()


def check(root: Path, sha256: str, pack: str | None = None, offset: int | None = None,
          chunk: int = 1 << 20) -> int:
    """Re-hash a stored content a chunk at a time (a 512 MiB file needs 1 MiB of memory);
    returns its size. FileNotFoundError when it is not there, StoreError when it is not it."""
    if pack is not None:
        path = root / pack
        with open(path, "rb") as fh:
            size = _header(fh, path, sha256, offset or 0)
            _check_record(fh, path, sha256, size, chunk)
        return size
    h, size = _sha256(), 0
    with open(path_for(root, sha256), "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
            size += len(block)
    if h.hexdigest() != sha256:
        raise StoreError(f"stored copy of {sha256[:12]}… does not match its SHA-256")
    return size


def _check_record(fh: BinaryIO, path: Path, sha256: str, size: int, chunk: int) -> None:
    """Hash the ``size`` bytes of a pack record from ``fh``'s position, ``chunk`` at a time, and
    raise StoreError when they are cut short or are not the content ``sha256`` names."""
    h, left = _sha256(), size
    while left:
        block = fh.read(min(chunk, left))
        if not block:
            raise StoreError(f"{path}: the record of {sha256[:12]}… is cut short")
        h.update(block)
        left -= len(block)
    if h.hexdigest() != sha256:
        raise StoreError(f"stored copy of {sha256[:12]}… does not match its SHA-256")


def packs(root: Path) -> list[str]:
    """Every pack in the store, relative to it with POSIX separators (as the ledger names them)."""
    base = root / PACKS
    if not base.is_dir():
        return []
    return sorted(p.relative_to(root).as_posix() for p in base.glob("*/*.pack"))


def _header(fh: BinaryIO, path: Path, sha256: str, offset: int) -> int:
    fh.seek(offset)
    return _parsed_header(fh.readline(_HEADER_MAX), path, sha256, offset)


def _parsed_header(line: bytes, path: Path, sha256: str, offset: int) -> int:
    header = line.split()
    if (len(header) != 3 or header[0] != MAGIC or header[1] != sha256.encode("ascii")
            or not header[2].isdigit()):
        raise StoreError(f"{path} at byte {offset} holds no record of {sha256[:12]}…")
    return int(header[2])


def _read_record_at(fd: int, path: Path, sha256: str, offset: int, size: int | None) -> bytes:
    """The bytes of the record at ``offset``, checked as ``_header`` and a read of its size
    check them; with the size the ledger records, the header and the bytes in one read."""
    guess = _HEADER_MAX if size is None else len(_header_line(sha256, size)) + size
    block = _pread(fd, guess, offset)
    end = block.find(b"\n", 0, _HEADER_MAX)
    if end < 0 and guess < _HEADER_MAX:  # a longer header than guessed (a big file's, padded)
        block = _pread(fd, _HEADER_MAX, offset)
        end = block.find(b"\n", 0, _HEADER_MAX)
    line = block[:end + 1] if end >= 0 else block[:_HEADER_MAX]
    stored = _parsed_header(line, path, sha256, offset)
    start = len(line)
    data = block[start:start + stored]
    while len(data) < stored:  # the size guessed was not the record's, or a short read
        more = _pread(fd, stored - len(data), offset + start + len(data))
        if not more:
            break
        data += more
    if len(data) != stored:
        raise StoreError(f"{path}: the record of {sha256[:12]}… is cut short")
    return data


def _header_line(sha256: str, size: int) -> bytes:
    return b"%s %s %d\n" % (MAGIC, sha256.encode("ascii"), size)


def _read_at(fd: int, length: int, offset: int) -> bytes:
    """``os.pread`` where the platform has none (Windows): a reader's descriptors are its
    own, so nothing else moves their position in between."""
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, length)


_pread = getattr(os, "pread", _read_at)


def fsync_dir(path: Path) -> None:
    """Make a new name in ``path`` durable; a no-op where directories cannot be opened
    (Windows)."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
