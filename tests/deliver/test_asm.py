"""Allotrope LC documents: one per injection of each corpus format, valid against the schema
allotropy ships, and carrying the peaks back exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.pipeline import Pipeline

from worker.deliver import asm
from worker.record.models import Chromatogram, Injection, Peak

pytest.importorskip("allotropy", reason="the asm extra: pip install -e '.[asm]'")

# Every corpus export that is one injection on its own, by the format it is read as, and the
# traces whose unit the schema has a measure for (the rest get no data cube).
FILES = [
    ("agilent-openlab-csv/report", ("agilent-1290", "12_Report.csv")),
    ("trace-csv", ("agilent-1290", "20260113 153049", "Blank_1.dx_DAD1A.CSV")),
    ("agilent-chemstation-txt", ("agilent-chemstation", "001F0101.D", "Report.TXT")),
    ("ezchrom-asc", ("ezchrom-asc", "2023-06-29-014-excerpt.dat.asc")),
    ("ezchrom-asc", ("ezchrom-asc", "05_25_D-excerpt.asc")),
    ("shimadzu", ("shimadzu-labsolutions", "new-shim-1.txt")),
    ("shimadzu", ("shimadzu-labsolutions", "STD 1 100-excerpt.txt")),
    ("chromeleon", ("thermo-chromeleon", "Adenosine Stadards_ 0.5 mM.txt")),
    ("chromeleon", ("thermo-chromeleon", "20170526_MME_AA_STD-Mix2-excerpt.txt")),
    ("empower", ("waters-empower", "results1844.arw")),
]


def measurements(doc: dict) -> list[dict]:
    [lc] = doc["liquid chromatography aggregate document"]["liquid chromatography document"]
    return lc["measurement aggregate document"]["measurement document"]


@pytest.mark.parametrize(("fmt", "parts"), FILES, ids=[p[-1] for _, p in FILES])
def test_each_format_validates_and_round_trips_its_peaks(pipeline: Pipeline, corpus: Path,
                                                         fmt: str, parts: tuple[str, ...]) -> None:
    row = pipeline.run("/".join(("run", *parts[1:])), corpus.joinpath(*parts).read_bytes())
    assert (row.state, row.format) == ("ingested", fmt)
    [injection] = asm.injections()
    doc = json.loads(json.dumps(asm.document(injection)))  # as written and read back
    asm.validate(doc)

    stored = {(p.signal, p.number): p for p in Peak.select().where(Peak.injection == injection)}
    read = {}
    for m in measurements(doc):
        assert m["sample document"]["sample identifier"] == injection.sample.sample_id
        assert m["injection document"]["injection identifier"] == str(injection.number)
        signal = m["measurement identifier"].split("-", 2)[2]
        for d in (m.get("processed data aggregate document", {})
                  .get("processed data document", [{}])[0].get("peak list", {})
                  .get("peak", [])):
            read[(signal, int(d["peak index"]))] = d
    assert sorted(read) == sorted(stored)
    for key, p in stored.items():
        d = read[key]
        assert asm.from_seconds(d["retention time"]["value"]) == p.rt_min
        assert d["peak area"]["value"] == p.area
        assert d.get("relative peak area", {}).get("value") == p.area_pct
        assert d.get("peak height", {}).get("value") == p.height
        for field, name in (("width_min", "peak width"), ("begin_min", "peak start"),
                            ("end_min", "peak end")):
            value = getattr(p, field)
            assert (None if name not in d else asm.from_seconds(d[name]["value"])) == value

    traces = {t.signal: t for t in Chromatogram.select().where(
        Chromatogram.injection == injection)}
    cubes = {m["chromatogram data cube"]["label"]: m["chromatogram data cube"]
             for m in measurements(doc) if "chromatogram data cube" in m}
    measured = {s: asm.measure(t.value_unit) for s, t in traces.items()
                if t.detector != "status" and asm.measure(t.value_unit)}
    assert sorted(cubes) == sorted(measured)
    for signal, (concept, unit, factor) in measured.items():
        times, values = asm.unpack(bytes(traces[signal].data))
        structure = cubes[signal]["cube-structure"]["measures"][0]
        assert (structure["concept"], structure["unit"]) == (concept, unit)
        assert cubes[signal]["data"]["measures"][0] == [v * factor for v in values]
        assert len(cubes[signal]["data"]["dimensions"][0]) == traces[signal].points \
            == len(times)


def test_trace_units_map_to_the_schemas_measures() -> None:
    assert asm.measure("0.001 mV") == ("voltage", "mV", 0.001)
    assert asm.measure("25 µV") == ("voltage", "mV", 0.025)
    assert asm.measure("mVolts") == ("voltage", "mV", 1.0)
    assert asm.measure("mAU") == ("absorbance", "mAU", 1.0)
    assert asm.measure("0.0980665 MPa") is None  # a pump pressure is no chromatogram
    assert asm.measure(None) is None


def test_a_document_the_schema_refuses_is_caught(pipeline: Pipeline, corpus: Path) -> None:
    pipeline.run("run/12_Report.csv", (corpus / "agilent-1290" / "12_Report.csv").read_bytes())
    [injection] = Injection.select()
    doc = asm.document(injection)
    peak = measurements(doc)[0]["processed data aggregate document"][
        "processed data document"][0]["peak list"]["peak"][0]
    peak["retention time"]["unit"] = "min"  # ASM wants seconds
    with pytest.raises(ValueError, match="'s' was expected"):
        asm.validate(doc)


def test_export_writes_one_document_per_injection(pipeline: Pipeline, corpus: Path,
                                                  tmp_path: Path) -> None:
    import subprocess
    import sys
    for name in ("12_Report.csv", "25_Report.csv"):
        pipeline.run(f"run/{name}", (corpus / "agilent-1290" / name).read_bytes())
    s = pipeline.settings
    out = tmp_path / "asm"
    done = subprocess.run([sys.executable, "-m", "worker", "export", "--format", "asm",
                           "--output", str(out), "--data-dir", str(s.data_dir), "--inbox",
                           str(s.inbox)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    files = sorted(out.glob("*.json"))
    assert len(files) == 2
    for f in files:
        asm.validate(json.loads(f.read_text(encoding="utf-8")))
    no_folder = subprocess.run([sys.executable, "-m", "worker", "export", "--format", "asm",
                                "--data-dir", str(s.data_dir)], capture_output=True, text=True)
    assert no_folder.returncode == 2 and "--output" in no_folder.stderr
