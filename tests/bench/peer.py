"""The peer's parser, Accu-Mk1's, run side by side with ours on the one format both read.

Its code is not part of this repository: ``load`` takes it from ``ACCU_PEER_SRC`` (a path to
``backend/parsers/peakdata_csv_parser.py`` of Zstar0/Accu-Mk1 at the pinned commit), else from
the cache below, else downloads it from GitHub at that commit into the cache. Where none of
that works the row says so and how to provide the file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import urllib.request
from pathlib import Path
from types import ModuleType

REPO = "Zstar0/Accu-Mk1"
COMMIT = "1e70d3eb68381828c46f75a25e17c0134919a239"
PATH = "backend/parsers/peakdata_csv_parser.py"
URL = f"https://raw.githubusercontent.com/{REPO}/{COMMIT}/{PATH}"
CACHE = (Path.home() / ".cache" / "accu-ingest" / "peer" / f"{REPO.replace('/', '-')}-{COMMIT}"
         / PATH)


def source() -> tuple[Path | None, str]:
    """Where the peer's parser is (or None) and how it was found, or why not."""
    given = os.environ.get("ACCU_PEER_SRC")
    if given:
        return (Path(given), "ACCU_PEER_SRC") if Path(given).is_file() else (
            None, f"ACCU_PEER_SRC={given} is not a file")
    if CACHE.is_file():
        return CACHE, "cache"
    try:
        with urllib.request.urlopen(URL, timeout=10) as answer:
            text = answer.read()
    except OSError as exc:
        return None, (f"not available ({exc.__class__.__name__}): put {PATH} of {REPO}@"
                      f"{COMMIT[:7]} at {CACHE} or set ACCU_PEER_SRC")
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    CACHE.write_bytes(text)
    return CACHE, "downloaded"


def load() -> tuple[ModuleType | None, str]:
    """The peer's parser module and a note naming what was run (commit, file digest)."""
    path, how = source()
    if path is None:
        return None, how
    spec = importlib.util.spec_from_file_location("accu_mk1_peakdata_csv_parser", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return module, f"{REPO}@{COMMIT[:7]} {PATH} ({how}, sha256 {digest}…)"
