"""The README's Formats table is what a lab reads to know whether its exports will be taken: it
must name every registered parser and nothing else: a format it lists is read, and one it says
is not read (issue 17's formats without a public sample) has no parser claiming it unlisted."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

from worker.parsers import ENTRY_POINT_GROUP

README = Path(__file__).resolve().parents[2] / "README.md"


def _documented_modules() -> set[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Formats\n", 1)[1].split("\n## ", 1)[0]
    table = section.split("| format | module | what is read |", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"^\| [^|]+ \| `(\w+)` \|", table, flags=re.MULTILINE))


def test_the_formats_table_names_exactly_the_registered_parsers() -> None:
    registered = {ep.value.rsplit(".", 1)[-1] for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert _documented_modules() == registered

