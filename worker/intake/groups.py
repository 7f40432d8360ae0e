"""Files an instrument writes as one unit: the ChemStation ``.D`` folder (its method copies in
subfolders included). The watcher takes such a folder's files together, once all of them are
complete, so the consumer that writes the folder's injection finds every sibling registered.
"""

from __future__ import annotations

from pathlib import PurePosixPath


def folder_of(path: str) -> str | None:
    """The ``.D`` folder (inbox-relative, ``/`` separators) a path lies in, at any depth; None
    outside one."""
    if ".d/" not in path.lower():  # most paths: no folder of theirs ends in .d, and it is asked
        return None                # several times for every file
    parts = PurePosixPath(path).parts[:-1]
    for depth in range(len(parts), 0, -1):
        name = parts[depth - 1]
        if len(name) > 2 and name.lower().endswith(".d"):
            return str(PurePosixPath(*parts[:depth]))
    return None
