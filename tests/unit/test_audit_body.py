"""An append writes each event's hashed body out field by field (``audit._body``) rather than
encoding the list ``audit._digest`` hashes (and ``audit verify`` recomputes): the two must be
the same text, or every event appended would fail verification."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from worker.record import audit

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)))


@given(prev=text, seq=st.integers(min_value=0, max_value=2**62), at=text, host=text,
       pid=st.integers(min_value=0, max_value=2**31), version=text, event=text,
       sha256=st.none() | text, file_id=st.none() | st.integers(min_value=0, max_value=2**62),
       details=st.dictionaries(text, st.none() | st.booleans() | st.floats() | text
                               | st.lists(st.integers())))
def test_an_appended_events_hash_is_the_one_verify_recomputes(
        prev: str, seq: int, at: str, host: str, pid: int, version: str, event: str,
        sha256: str | None, file_id: int | None, details: dict[str, object]) -> None:
    encoded = audit.canonical(details)
    body = audit._body(prev, seq, at, audit._writer(host, pid, version), event, sha256, file_id,
                       encoded)
    for key in (None, b"k" * 32):
        assert audit._hashed(body, key) == audit._digest(
            prev, seq, at, host, pid, version, event, sha256, file_id, encoded, key)
