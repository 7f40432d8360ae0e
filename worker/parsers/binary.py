"""What the binary parsers share: their optional libraries, and handing bytes to a reader that
only takes a path.

rainbow-api (ChemStation ``.ch``/``.uv``) opens files by name. A parser gets bytes, so it hands
them over in a private temporary file, deleted as soon as the reader returns: nothing of the
inbox, the raw store or the database is touched, and the same bytes always read the same.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from worker.parsers.base import ParseError

EXTRA = "instruments"


def library(module: str, what: str, filename: str) -> ModuleType:
    """``module`` imported, or a ParseError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ParseError(f"reading {what} needs the {module.split('.')[0]} library: install "
                         f"accu-ingest with the {EXTRA!r} extra "
                         f"(pip install 'accu-ingest[{EXTRA}]')", filename=filename) from None


@contextmanager
def on_disk(data: bytes | memoryview, suffix: str) -> Iterator[str]:
    """A private temporary file holding ``data`` (its name ending in ``suffix``, which the reader
    dispatches on), removed on leaving the block."""
    fd, path = tempfile.mkstemp(prefix="accu-ingest-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        yield path
    finally:
        os.unlink(path)


def pascal(data: bytes, offset: int = 0) -> str | None:
    """The length-prefixed ASCII text at ``offset`` (ChemStation files open with their version
    so: ``\\x03181``), None when the bytes there are not one."""
    if len(data) <= offset:
        return None
    size = data[offset]
    text = data[offset + 1:offset + 1 + size]
    if size == 0 or len(text) != size or not text.isascii() or not text.isalnum():
        return None
    return text.decode("ascii")


def sniff_version(data: bytes, filename: str, versions: tuple[str, ...], suffix: str) -> int:
    """A ChemStation binary file by the version it opens with: 98 for one of ``versions`` (the
    ones rainbow-api reads), 60 for another version in a file named ``*suffix`` (so ``parse``
    names the version it found), else 0. Reads the first bytes only."""
    if not b"\x00" < data[:1] < b"\x08":
        return 0  # no length byte that ``pascal`` reads within the first 8 bytes: every text file
    found = pascal(data[:8])
    if found in versions and len(data) > 0x120:
        return 98
    if found is not None and found.isdigit() and filename.lower().endswith(suffix):
        return 60
    return 0
