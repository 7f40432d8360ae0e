"""Natural ordering of injection labels: ``Inj_2`` before ``Inj_10``.

Why: instruments number injections without leading zeros, so a plain string sort puts
``Inj_10`` between ``Inj_1`` and ``Inj_2`` and every per-injection table and trace reads in
the wrong order.

Rule: the label is split into runs of digits and non-digits; digit runs compare as integers,
text runs case-insensitively. Numbers sort before text at the same position (``A1`` < ``AB``).
Labels that compare equal that way (``Inj_02`` / ``Inj_2``, ``inj`` / ``Inj``) fall back to the
raw string, so the order is total and deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

_CHUNKS = re.compile(r"([0-9]+)")


def natural_key(label: str) -> tuple[tuple[tuple[int, int | str], ...], str]:
    """Sort key for ``label`` (use as ``sorted(labels, key=natural_key)``)."""
    parts: list[tuple[int, int | str]] = []
    # re.split with a capturing group alternates text, digits, text, …: odd indices are digits.
    for i, chunk in enumerate(_CHUNKS.split(label)):
        if not chunk:
            continue
        if i % 2:
            parts.append((0, int(chunk)))
        else:
            parts.append((1, chunk.casefold()))
    return tuple(parts), label


def natural_sorted(items: Iterable[T], key: Callable[[T], str] | None = None) -> list[T]:
    """``items`` in natural order of their label (``key`` extracts it; default: the item)."""
    if key is None:
        return sorted(items, key=lambda item: natural_key(str(item)))
    return sorted(items, key=lambda item: natural_key(key(item)))
