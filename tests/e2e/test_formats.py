"""End to end: every vendor folder of the corpus dropped into a running worker ends as the
right rows — samples, peaks per signal, chromatograms — and nothing valid is rejected. ChemStation
``.D`` folders become one injection each whatever the order their files arrive in."""

from __future__ import annotations

import shutil
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.workers import WorkerProcess, files_under

from worker.record.models import Chromatogram, Injection, Peak, Result, Sample, SourceFile

SETTLE = 2.0
TIMINGS = ("stable_seconds = 0.5\nrescan_seconds = 2.0\nreconcile_seconds = 0.5\n"
           f"lease_seconds = 20.0\ngroup_settle_seconds = {SETTLE}\n")


def start(root: Path, extra_toml: str = "") -> WorkerProcess:
    config = root / "accu-ingest.toml"
    config.write_text(TIMINGS + extra_toml, encoding="utf-8")
    return WorkerProcess(root, "--config", str(config)).start()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        if w.proc is not None and w.proc.poll() is None:
            w.stop(signal.SIGKILL)


def current_peaks(sample: Sample) -> Counter[str]:
    rows = (Peak.select().join(Injection)
            .where(Injection.sample == sample, Injection.superseded == False))  # noqa: E712
    return Counter(p.signal for p in rows)


def test_chemstation_d_folders_are_one_injection_each(workers: list, tmp_path: Path,
                                                      corpus: Path, open_db) -> None:
    worker = start(tmp_path)
    workers.append(worker)
    shutil.copytree(corpus / "agilent-chemstation", worker.inbox / "seq1")
    status = worker.wait_final(5, timeout=60)
    assert status["files"]["ingested"] == 5 and status["files"]["rejected"] == 0

    open_db(worker.data)
    samples = {s.sample_id: s for s in Sample.select()}
    assert sorted(samples) == ["0312650-0713-SM", "DFA-708-01"]
    assert {s.job.name for s in samples.values()} == {"seq1"}  # the sequence, not each .D
    for sample in samples.values():
        assert sample.injections.count() == 1  # one injection per .D folder, never superseded
    assert current_peaks(samples["DFA-708-01"]) == {"FID1 A": 3, "TCD2 B": 1}
    assert current_peaks(samples["0312650-0713-SM"]) == {"DAD1 A, Sig=210,4 Ref=360,100": 12}
    assert Peak.select().count() == 16  # no second copy of the peaks from the CSV set
    injection = samples["DFA-708-01"].injections.get()
    assert injection.source_file.name == "Report.TXT"
    evidence = SourceFile.select().where(SourceFile.name.endswith(".CSV"))
    assert sorted(f.name for f in evidence) == ["REPORT01.CSV", "REPORT02.CSV", "Report00.CSV"]
    assert {(f.state, f.job_id) for f in evidence} == {("ingested", injection.sample.job_id)}
    main = Peak.select().where(Peak.injection == injection).order_by(Peak.area.desc()).first()
    assert (main.rt_min, main.area_pct) == (2.824, 97.91525)
    assert Result.get(Result.sample == samples["DFA-708-01"], Result.kind == "purity",
                      Result.superseded == False).value == 97.91525  # noqa: E712
    assert files_under(worker.inbox) == []
    assert worker.cli("audit", "verify").returncode == 0


def test_chemstation_csv_set_alone_then_report_txt_later(workers: list, tmp_path: Path,
                                                         corpus: Path, open_db) -> None:
    """Without Report.TXT the set is read with parse_set; a Report.TXT arriving afterwards takes
    over, so the current rows are those of the TXT-first order."""
    worker = start(tmp_path)
    workers.append(worker)
    source = corpus / "agilent-chemstation" / "001F0101.D"
    folder = worker.inbox / "seq2" / "001F0101.D"
    folder.mkdir(parents=True)
    for name in ("REPORT02.CSV", "REPORT01.CSV", "Report00.CSV"):  # rows before their header
        shutil.copy(source / name, folder / name)
    status = worker.wait_final(3, timeout=60)
    assert status["files"]["ingested"] == 3 and status["files"]["rejected"] == 0
    open_db(worker.data)
    sample = Sample.get()
    assert sample.sample_id == "DFA-708-01"
    assert current_peaks(sample) == {"FID1 A": 3, "TCD2 B": 1}
    assert Injection.get().source_file.name == "Report00.CSV"

    shutil.copy(source / "Report.TXT", folder / "Report.TXT")
    status = worker.wait_final(4, timeout=60)
    assert status["files"]["ingested"] == 4 and status["files"]["rejected"] == 0
    assert Sample.select().count() == 1
    current = Injection.get(Injection.superseded == False)  # noqa: E712
    assert current.source_file.name == "Report.TXT"
    assert current_peaks(sample) == {"FID1 A": 3, "TCD2 B": 1}
    purity = Result.get(Result.sample == sample, Result.kind == "purity",
                        Result.superseded == False)  # noqa: E712
    assert purity.value == 97.91525


def test_shimadzu_signals_and_configured_purity_signal(workers: list, tmp_path: Path,
                                                       corpus: Path, open_db) -> None:
    worker = start(tmp_path, '[methods.default]\npurity_signal = "Detector B"\n')
    workers.append(worker)
    (worker.inbox / "shimadzu").mkdir()
    shutil.copy(corpus / "shimadzu-labsolutions" / "new-shim-1.txt", worker.inbox / "shimadzu")
    status = worker.wait_final(1, timeout=60)
    assert status["files"]["ingested"] == 1
    open_db(worker.data)
    sample = Sample.get()
    assert sample.sample_id == "Tommy-S-1-031022"
    assert current_peaks(sample) == {"Detector A": 11, "Detector B": 41, "AD2": 6}
    traces = {c.signal: c.points for c in Chromatogram.select()}
    assert len(traces) == 7 and {traces[s] for s in ("Detector A", "Detector B", "AD2")} == {2401}
    purity = Result.get(Result.sample == sample, Result.kind == "purity",
                        Result.superseded == False)  # noqa: E712
    assert round(purity.value, 2) == 64.79  # Detector B's main peak, as configured
    per_injection = Result.get(Result.sample == sample, Result.kind == "purity_injection")
    assert "6.934" in per_injection.trace + per_injection.inputs


def test_chromeleon_and_empower_traces(workers: list, tmp_path: Path, corpus: Path,
                                       open_db) -> None:
    worker = start(tmp_path)
    workers.append(worker)
    for folder, name in (("thermo-chromeleon", "Adenosine Stadards_ 0.5 mM.txt"),
                         ("waters-empower", "results1844.arw")):
        (worker.inbox / folder).mkdir()
        shutil.copy(corpus / folder / name, worker.inbox / folder)
    status = worker.wait_final(2, timeout=60)
    assert status["files"]["ingested"] == 2 and status["files"]["rejected"] == 0
    open_db(worker.data)
    by_sample = {c.injection.sample.sample_id: c for c in Chromatogram.select()}
    assert sorted(by_sample) == ["A 0,5 mM", "SEC_08"]
    chromeleon, empower = by_sample["A 0,5 mM"], by_sample["SEC_08"]
    assert (chromeleon.points, chromeleon.signal, chromeleon.value_unit) == (26401, "UV_VIS_1",
                                                                              "mAU")
    assert chromeleon.injection.sample.kind == "standard" and chromeleon.injection.number == 30
    assert (empower.points, empower.t_start, empower.t_end) == (6601, 0.0, 55.0)
    assert Peak.select().count() == 0  # traces only: nothing invented


def test_configured_table_is_read_and_the_lab_workbook_stays_rejected(
        workers: list, tmp_path: Path, corpus: Path, open_db) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Peaks"
    sheet.append(["Run 7 — exported table"])
    sheet.append(["Peak", "Ret. Time", "Area", "Area %", "Name"])
    sheet.append([1, 2.51, 10.5, 4.5, "impurity"])
    sheet.append([2, 7.62, 222.0, 95.5, "AOD9604"])
    sheet.append([None, None, 232.5, 100.0, "Total"])
    worker = start(tmp_path, '[tables.lab]\nfiles = ["*_peaks.xlsx"]\nsheet = "Peaks"\n'
                             'columns = {rt = "Ret. Time", area = "Area", area_pct = "Area %", '
                             'name = "Name"}\n')
    workers.append(worker)
    book.save(worker.inbox / "P-0142_Inj_1_peaks.xlsx")
    shutil.copy(next((corpus / "agilent-1290").glob("STD_*.xlsx")), worker.inbox)
    status = worker.wait_final(2, timeout=60)
    assert status["files"]["ingested"] == 1 and status["files"]["rejected"] == 1
    open_db(worker.data)
    rows = list(Peak.select().order_by(Peak.number))
    assert [(p.rt_min, p.area, p.area_pct, p.name) for p in rows] == [
        (2.51, 10.5, 4.5, "impurity"), (7.62, 222.0, 95.5, "AOD9604")]
    assert Sample.get().sample_id == "P-0142"
    rejected = SourceFile.get(SourceFile.state == "rejected")
    assert rejected.name.startswith("STD_") and "[tables.NAME]" in rejected.error


@pytest.mark.parametrize(("path", "role", "job", "name"), [
    ("seq/001F0101.D/Report.TXT", "report", "seq", "001F0101"),
    ("seq/001F0101.d/REPORT01.CSV", "set-rows", "seq", "001F0101"),
    ("001F0101.D/Report00.CSV", "set-header", "001F0101.D", "001F0101"),
    ("seq/001F0101.D/FID1A.ch", None, "seq", "001F0101"),
    ("seq/Report.TXT", None, "seq", "Report.TXT"),
    ("seq/.D/Report.TXT", None, "seq/.D", "Report.TXT"),
])
def test_d_folder_roles(path: str, role: str | None, job: str, name: str) -> None:
    from worker.consume import dfolder

    found = dfolder.member(path)
    assert (found.role if found else None) == role
    assert dfolder.job_folder(path) == job and dfolder.fallback_name(path) == name


@pytest.mark.parametrize(("wanted", "chosen"), [
    (None, "DAD1 A, Sig=210,4 Ref=360,100"), ("DAD1 B, Sig=254,4 Ref=360,100",
                                              "DAD1 B, Sig=254,4 Ref=360,100"),
    ("254 nm", "DAD1 B, Sig=254,4 Ref=360,100"), ("280", "UV 280nm"), ("360", None),
    ("Detector C", None)])
def test_purity_signal_by_name_or_wavelength(wanted: str | None, chosen: str | None) -> None:
    from types import SimpleNamespace

    from worker.results.inputs import purity_signal

    names = ["DAD1 A, Sig=210,4 Ref=360,100", "DAD1 B, Sig=254,4 Ref=360,100", "UV 280nm"]
    peaks = [SimpleNamespace(signal=n) for n in names]
    assert purity_signal(peaks, wanted) == chosen  # type: ignore[arg-type]
