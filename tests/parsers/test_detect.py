"""Detection picks the most confident parser, a tie going to the first name in order, whatever
order the parsers were registered in."""

from __future__ import annotations

from itertools import permutations
from types import SimpleNamespace

import pytest

from worker import parsers
from worker.parsers.base import ParseError


def _parser(name: str, score: int) -> SimpleNamespace:
    return SimpleNamespace(name=name, sniff=lambda data, filename, options: score)


@pytest.mark.parametrize(("scores", "winner"), [
    ({"b": 70, "a": 70, "c": 60}, "a"),
    ({"b": 90, "a": 70, "c": 90}, "b"),
    ({"z": 50, "y": 49}, "z"),
    ({"m": 80}, "m"),
])
def test_the_highest_score_wins_and_a_tie_goes_to_the_first_name(
        monkeypatch: pytest.MonkeyPatch, scores: dict[str, int], winner: str) -> None:
    for order in permutations(scores):
        registry = {name: _parser(name, scores[name]) for name in order}
        monkeypatch.setattr(parsers, "registered", lambda registry=registry: registry)
        assert parsers.detect(b"x\n", "f.csv").name == winner, order


def test_no_score_at_the_threshold_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = {"a": _parser("a", 49), "b": _parser("b", 0)}
    monkeypatch.setattr(parsers, "registered", lambda: registry)
    with pytest.raises(ParseError, match="unrecognised format"):
        parsers.detect(b"x\n", "f.csv")
