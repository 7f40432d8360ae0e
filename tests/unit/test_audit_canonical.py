"""The audit trail's canonical JSON: its text is what every event's hash covers, so a faster
encoder must give byte for byte the text json.dumps gives with the same options, or every
trail written before would stop verifying."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from worker.record import audit


def reference(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_canonical_is_json_dumps_with_sorted_keys_and_no_spaces(value: Any) -> None:
    assert audit.canonical(value) == reference(value)


def test_canonical_spells_events_as_before() -> None:
    details = {"size": 12, "revision_of": None, "pack": "packs/2026-01-13/x.pack", "offset": 0,
               "path": "SEQ 1/Ä.csv", "at": datetime(2026, 1, 13, tzinfo=UTC),
               "where": Path("/inbox/a"), "nan": float("nan"), "line\u2028": "\x00\"\\"}
    body = ["0" * 64, 7, "2026-01-13T15:30:49.000001+00:00", "lab-pc", 4242, "1.0", "stored",
            "a" * 64, None, audit.canonical(details)]
    for value in (details, body, "plain", 3, None, [], {}):
        assert audit.canonical(value) == reference(value)
