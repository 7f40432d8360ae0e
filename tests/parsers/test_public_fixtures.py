"""Golden tests on exports from other projects' public test data (tests/fixtures/formats/)."""

from __future__ import annotations

from pathlib import Path

from worker import parsers

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "formats"


def test_appia_shimadzu_peak_tables_reproduce_the_printed_values() -> None:
    path = FIXTURES / "shimadzu" / "new-shim-3-peaks.txt"
    parsed = parsers.parse(path.read_bytes(), path.name)
    assert parsed.format == "shimadzu" and parsed.sample_name == "Tommy-S-3-031022"
    assert parsed.vial == "23"
    tables = {s.name: s for s in parsed.signals}
    assert {name: len(s.peaks or []) for name, s in tables.items()} == {
        "Detector A": 10, "Detector B": 45, "AD2": 5}
    printed_largest = {"Detector A": (10.330, 1268061.0), "Detector B": (7.862, 26796039.0),
                       "AD2": (7.365, 43275.0)}
    for name, (rt, area) in printed_largest.items():
        peaks = tables[name].peaks or []
        largest = max(peaks, key=lambda p: p.area)
        assert (largest.rt_min, largest.area) == (rt, area)
        assert tables[name].total_area == sum(p.area for p in peaks)
        assert abs(sum(p.area_pct or 0 for p in peaks) - 100) < 1e-9
    first = (tables["Detector A"].peaks or [])[0]
    assert (first.number, first.rt_min, first.begin_min, first.end_min, first.height) == (
        1, 5.767, 4.133, 6.308, 614.0)
