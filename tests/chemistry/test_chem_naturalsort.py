"""Natural order of injection labels."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from worker.chemistry.naturalsort import natural_key, natural_sorted


def test_inj_2_before_inj_10() -> None:
    labels = ["Inj_10", "Inj_2", "Inj_1", "Inj_11", "Inj_3"]
    assert natural_sorted(labels) == ["Inj_1", "Inj_2", "Inj_3", "Inj_10", "Inj_11"]
    assert sorted(labels) != natural_sorted(labels)


def test_mixed_labels_case_and_leading_zeros() -> None:
    labels = ["blank_2", "Blank_10", "Inj_02", "Inj_2", "inj_1", "STD_250", "STD_12", "A1", "AB"]
    assert natural_sorted(labels) == ["A1", "AB", "blank_2", "Blank_10", "inj_1", "Inj_02",
                                      "Inj_2", "STD_12", "STD_250"]


def test_key_argument_and_non_ascii_digits() -> None:
    items = [{"l": "S 10"}, {"l": "S 9"}]
    assert natural_sorted(items, key=lambda d: d["l"]) == [{"l": "S 9"}, {"l": "S 10"}]
    # superscripts / non-ASCII digits are text, not numbers (no crash)
    assert natural_sorted(["x²", "x2", "x١"]) == ["x2", "x²", "x١"]


@given(st.lists(st.text(max_size=8)))
def test_total_order_never_raises(labels: list[str]) -> None:
    out = natural_sorted(labels)
    assert sorted(out) == sorted(labels)
    assert natural_sorted(out) == out
    keys = [natural_key(s) for s in out]
    assert keys == sorted(keys)
