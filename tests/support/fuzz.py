"""Shared pieces of the parsers' property tests: the example budget and byte-level damage."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# ACCU_FUZZ_EXAMPLES=10000 turns every property test into the long fuzzing run.
FUZZ = settings(max_examples=int(os.environ.get("ACCU_FUZZ_EXAMPLES", "200")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def damage(raw: bytes, data: st.DataObject) -> bytes:
    """1–4 random edits: a byte flipped, the rest cut off, bytes inserted or deleted."""
    out = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(out)))
        action = data.draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        if action == "cut":
            del out[at:]
        elif action == "insert":
            out[at:at] = data.draw(st.binary(min_size=1, max_size=40))
        elif action == "delete":
            del out[at:at + data.draw(st.integers(1, 200))]
        elif at < len(out):
            out[at] ^= data.draw(st.integers(1, 255))
    return bytes(out)
