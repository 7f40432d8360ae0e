"""Golden files: what every real file the tests carry parses to, committed as JSON.

One summary per file of ``tests/corpus`` under ``tests/golden/`` (same relative path, ``.json``
added): the format and run facts the parser read, every peak of every signal, and a fingerprint
of each trace — or the rejection, with its line and reason. A parser change that alters any of
it fails here, naming the file and the first difference. After a deliberate change, write them
anew and review the diff like code:

    ACCU_GOLDEN_UPDATE=1 python -m pytest tests/parsers/test_golden.py
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import pytest
from support.corpus import REPO, corpus_dir

from worker import parsers
from worker.parsers.base import ParsedFile, ParseError, Signal, Spectra

GOLDEN = REPO / "tests" / "golden"
UPDATE = os.environ.get("ACCU_GOLDEN_UPDATE") == "1"
SKIP = {"README.md"}  # the corpus's own description, not an instrument file


def corpus_files() -> list[str]:
    root = corpus_dir()
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and p.name not in SKIP)


def number(value: float | None) -> float | None:
    """Rounded to 12 significant digits: what the file printed, not the last bit of a float."""
    if value is None or not math.isfinite(value):
        return value
    return float(f"{value:.12g}")


def signal_summary(signal: Signal) -> dict[str, Any]:
    out: dict[str, Any] = {"name": signal.name, "detector": signal.detector,
                           "wavelength_nm": number(signal.wavelength_nm),
                           "total_area": number(signal.total_area)}
    if signal.peaks is not None:
        out["peaks"] = [{"number": p.number, "rt_min": number(p.rt_min), "area": number(p.area),
                         "area_pct": number(p.area_pct), "height": number(p.height),
                         "begin_min": number(p.begin_min), "end_min": number(p.end_min),
                         "width_min": number(p.width_min), "type": p.peak_type, "name": p.name,
                         "line": p.line} for p in signal.peaks]
    if signal.trace is not None:
        t = signal.trace
        top = max(range(t.points), key=t.values.__getitem__)
        out["trace"] = {"points": t.points, "time_unit": t.time_unit,
                        "value_unit": t.value_unit, "first_time": number(t.times[0]),
                        "last_time": number(t.times[-1]), "max_value": number(t.values[top]),
                        "max_at": number(t.times[top]), "sum": number(math.fsum(t.values))}
    return out


def summary(parsed: ParsedFile) -> dict[str, Any]:
    return {
        "parsed": True,
        "format": parsed.format, "parser_version": parsed.parser_version,
        "encoding": parsed.encoding, "sample_name": parsed.sample_name,
        "injection": parsed.injection, "sample_kind": parsed.sample_kind,
        "level": number(parsed.level), "vial": parsed.vial, "instrument": parsed.instrument,
        "method": parsed.method, "operator": parsed.operator,
        "acquired_at": parsed.acquired_at.isoformat() if parsed.acquired_at else None,
        "injection_volume": parsed.injection_volume,
        "dilution_factor": number(parsed.dilution_factor),
        "metadata": dict(sorted(parsed.metadata.items())),
        "signals": [signal_summary(s) for s in parsed.signals],
        **({"spectra": [spectra_summary(s) for s in parsed.spectra]} if parsed.spectra else {}),
    }


def spectra_summary(spectra: Spectra) -> dict[str, Any]:
    """Spectra read back from their stored form: shape, ranges, largest value and a checksum
    of every value."""
    from worker.results.spectra import matrix

    values = matrix(spectra.value_type, spectra.scale, len(spectra.wavelengths), spectra.data)
    return {"name": spectra.name, "detector": spectra.detector, "frames": spectra.frames,
            "wavelengths": [number(spectra.wavelengths[0]), number(spectra.wavelengths[-1]),
                            len(spectra.wavelengths)],
            "first_time": number(spectra.times[0]), "last_time": number(spectra.times[-1]),
            "value_unit": spectra.value_unit, "value_type": spectra.value_type,
            "max_value": number(float(values.max())), "max_at": spectra.maximum_at,
            "sum": number(float(values.sum()))}


def reading(data: bytes, name: str) -> dict[str, Any]:
    """What the registry makes of one file on its own, as the worker parses a loose file."""
    try:
        return summary(parsers.parse(data, name))
    except ParseError as exc:
        return {"parsed": False, "line": exc.line, "reason": exc.reason}


def first_difference(expected: Any, actual: Any, where: str = "") -> str | None:
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            if key not in actual or key not in expected:
                return f"{where}.{key}: only in {'golden' if key in expected else 'reading'}"
            found = first_difference(expected[key], actual[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return f"{where}: {len(expected)} items in the golden file, {len(actual)} read"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            found = first_difference(e, a, f"{where}[{i}]")
            if found:
                return found
        return None
    return None if expected == actual else f"{where}: golden {expected!r}, read {actual!r}"


@pytest.mark.parametrize("rel", corpus_files())
def test_real_file_parses_as_its_golden_summary(rel: str) -> None:
    path = corpus_dir() / rel
    actual = json.loads(json.dumps(reading(path.read_bytes(), path.name)))
    golden = GOLDEN / f"{rel}.json"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(json.dumps(actual, indent=1, ensure_ascii=False) + "\n",
                          encoding="utf-8")
    assert golden.is_file(), (f"no golden file for {rel}: write it with ACCU_GOLDEN_UPDATE=1 "
                              "and review it")
    expected = json.loads(golden.read_text(encoding="utf-8"))
    difference = first_difference(expected, actual)
    assert difference is None, f"{rel}{difference} (ACCU_GOLDEN_UPDATE=1 after a deliberate change)"


def test_every_golden_file_has_its_real_file() -> None:
    """A golden file whose real file is gone would guard nothing."""
    files = set(corpus_files())
    orphans = sorted(p.relative_to(GOLDEN).as_posix()[:-len(".json")]
                     for p in GOLDEN.rglob("*.json")) if GOLDEN.is_dir() else []
    assert [rel for rel in orphans if rel not in files] == []


def test_a_changed_value_is_named() -> None:
    """The comparison reports where a reading departs from its golden file."""
    golden = {"signals": [{"peaks": [{"area": 1.5}]}]}
    assert first_difference(golden, {"signals": [{"peaks": [{"area": 1.6}]}]}) == \
        ".signals[0].peaks[0].area: golden 1.5, read 1.6"
    assert first_difference(golden, golden) is None

