"""End to end: whole ChemStation ``.D`` folders, as the instrument writes them, dropped into a
running worker (real watcher, real consumers): each is one injection with everything in it —
the report's peaks, one chromatogram per ``.ch`` file with the values the file holds, the DAD
spectra, the run facts cross-checked — and every other file kept as context, nothing
rejected. AIA netCDF and broken binary files beside them."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.workers import WorkerProcess, files_under, wait_for

from worker.record.models import (
    Chromatogram,
    Injection,
    InjectionDetail,
    InjectionFile,
    Peak,
    PeakDetail,
    Result,
    SourceFile,
    Spectrum,
)

TIMINGS = ("stable_seconds = 0.5\nrescan_seconds = 2.0\nreconcile_seconds = 0.5\n"
           "lease_seconds = 30.0\ngroup_settle_seconds = 1.0\n")
FOLDERS = ("001F0102.D", "001F0103.D", "002-2-0312650-0713-BrPR.D", "V181.D")
# (folder, .ch file) -> (points, first time, maximum, time of the maximum), from the corpus
# README (read there with rainbow-api, an independent reader).
SIGNALS = {
    ("001F0102.D", "FID1A.ch"): (3600, -0.00308, 2947.82, 2.82359),
    ("001F0102.D", "TCD2B.ch"): (3600, None, 190.661, 2.82692),
    ("001F0103.D", "FID1A.ch"): (3600, -0.00093, 3545.41, 2.82574),
    ("001F0103.D", "TCD2B.ch"): (3600, None, 225.008, 2.82908),
    ("002-2-0312650-0713-BrPR.D", "DAD1A.ch"): (2998, 0.00067, 1062.07, 1.62733),
    ("V181.D", "FID1A.ch"): (5913, None, 263.427, 0.16485),
    ("V181.D", "V181.ch"): (5913, None, 59055.9, 0.39873),
}
# folder -> (report's signal, main peak RT, Area%)
MAIN_PEAKS = {"001F0102.D": ("FID1 A", 2.823, 99.61087),
              "001F0103.D": ("FID1 A", 2.827, 99.60649),
              "002-2-0312650-0713-BrPR.D": ("DAD1 A, Sig=210,4 Ref=360,100", 1.628, 51.8366),
              "V181.D": ("FID1 A", 1.004461, 18.961434)}


def start(root: Path) -> WorkerProcess:
    config = root / "accu-ingest.toml"
    config.write_text(TIMINGS, encoding="utf-8")
    return WorkerProcess(root, "--config", str(config)).start()


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[WorkerProcess]:
    w = start(tmp_path)
    yield w
    if w.proc is not None and w.proc.poll() is None:
        w.stop(signal.SIGKILL)


def current(folder: str) -> Injection:
    return (Injection.select().join(SourceFile)
            .where(Injection.superseded == False,  # noqa: E712
                   SourceFile.path.startswith(f"seq/{folder}/")).get())


def test_four_d_folders_are_four_injections_with_everything_and_nothing_rejected(
        worker: WorkerProcess, corpus: Path, open_db, tmp_path: Path) -> None:
    source = corpus / "agilent-chemstation-folders"
    staging = tmp_path / "staging" / "seq"
    shutil.copytree(source, staging)
    shutil.move(str(staging), worker.inbox / "seq")  # the whole sequence at once, as copied
    contents = {p.read_bytes() for p in files_under(source)}

    def settled() -> bool:
        s = worker.status()
        return s["backlog"] == 0 and not files_under(worker.inbox)
    wait_for(settled, timeout=120, what="every file of the four folders final and moved")
    status = worker.status()
    assert status["files"]["rejected"] == 0

    open_db(worker.data)
    # Identical method copies are one content in the ledger (a duplicate): every distinct
    # content of the drop is registered and final, none rejected.
    assert SourceFile.select().count() == len(contents)
    assert SourceFile.select().where(SourceFile.state == "rejected").count() == 0
    for folder in FOLDERS:
        injection = current(folder)
        in_folder = (Injection.select().join(SourceFile)
                     .where(SourceFile.path.startswith(f"seq/{folder}/"),
                            Injection.superseded == False))  # noqa: E712
        assert in_folder.count() == 1, folder
        # the report's peaks, the main one as printed, and purity as before
        signal_name, rt, pct = MAIN_PEAKS[folder]
        main = (Peak.select().where(Peak.injection == injection, Peak.signal == signal_name)
                .order_by(Peak.area_pct.desc()).first())
        assert (main.rt_min, main.area_pct) == (rt, pct), folder
        purity = Result.get(Result.sample == injection.sample, Result.kind == "purity",
                            Result.superseded == False)  # noqa: E712
        # 001F0102.D and 001F0103.D are injections 2 and 3 of one sample: their mean
        same = [p for f, (_, _, p) in MAIN_PEAKS.items() if f.startswith("001F010")]
        assert purity.value == pytest.approx(sum(same) / 2 if folder.startswith("001F010")
                                             else pct)
        # every .ch a chromatogram, with the file's own values
        traces = {c.signal: c for c in Chromatogram.select().where(
            Chromatogram.injection == injection)}
        linked = list(InjectionFile.select().where(InjectionFile.injection == injection))
        links = {link.source_file.name: link for link in linked
                 if "/" not in link.source_file.path[len(f"seq/{folder}/"):]}
        for (where, name), (points, first, top, at) in SIGNALS.items():
            if where != folder:
                continue
            assert links[name].role == "signal" and links[name].note is None
            chrom = next(c for c in traces.values() if c.points == points
                         and _file_of(c) == name[:-3])
            times, values = _unpack(chrom.data)
            peak = max(range(len(values)), key=values.__getitem__)
            # as the README prints them: six significant digits, times to 1e-5 min
            assert f"{values[peak]:.6g}" == f"{top:.6g}"
            assert times[peak] == pytest.approx(at, abs=5e-6)
            if first is not None:
                assert times[0] == pytest.approx(first, abs=0.00001)
        # every other file of the folder linked, as context when nothing reads it
        registered = SourceFile.select().where(SourceFile.path.startswith(f"seq/{folder}/"))
        for row in registered:
            assert row.id in {link.source_file_id for link in linked}, row.path
            assert row.state in ("ingested", "context"), row.path
        # every content of the folder, those stored once for several folders (method copies
        # identical to the previous run's) included
        shas = {hashlib.sha256(p.read_bytes()).hexdigest() for p in files_under(source / folder)}
        assert {link.source_file.sha256 for link in linked} == shas, folder
        for row in registered:
            if row.name.upper().endswith((".REG", ".MTH", ".PDF", ".INI", ".XLS")):
                assert row.state == "context", row.path
                assert InjectionFile.get(InjectionFile.source_file == row.id).role == "context"

    # The report's main peak lies at a local maximum of the signal it names: the highest point
    # within 0.01 min of its printed RT is a local maximum, one printed digit (0.001 min) away.
    injection = current("002-2-0312650-0713-BrPR.D")
    chrom = Chromatogram.get(Chromatogram.injection == injection)
    times, values = _unpack(chrom.data)
    near = [k for k in range(len(times)) if abs(times[k] - 1.628) <= 0.01]
    top = max(near, key=values.__getitem__)
    assert values[top - 1] < values[top] > values[top + 1]
    assert abs(times[top] - 1.628) <= 0.001

    # The DAD spectra, stored and read back as the file holds them.
    spectrum = Spectrum.get(Spectrum.injection == injection)
    from worker.results import spectra
    t, wl, matrix = spectra.read(spectrum)
    assert matrix.shape == (1049, 106) and (wl[0], wl[-1]) == (190, 400)
    assert (t[0], t[-1]) == (pytest.approx(0.00067, abs=1e-5), pytest.approx(2.50233, abs=1e-5))
    import rainbow.agilent.chemstation as cs
    assert (matrix == cs.parse_uv(str(corpus / "agilent-chemstation-folders" /
                                      "002-2-0312650-0713-BrPR.D" / "DAD1.UV")).data).all()
    assert spectrum.maximum == matrix.max()

    # Run facts: V181.D was assembled from two runs, and says so.
    detail = InjectionDetail.get(InjectionDetail.injection == current("V181.D"))
    flags = {f["fact"]: f["values"] for f in json.loads(detail.flags)
             if f["flag"] == "metadata_disagrees"}
    assert flags["sample"]["FID1A.ch"] == "blanc421" and flags["sample"]["Result.xml"] == "140+H"
    assert current("V181.D").sample.sample_id == "140+H"  # under the report's name, flagged
    # Result.xml's columns beyond the common ones, per peak
    details = list(PeakDetail.select().join(Peak).where(Peak.injection == current("V181.D")))
    assert len(details) == 36
    main = max(details, key=lambda d: d.peak.area_pct)
    assert (main.peak.rt_min, main.amount, main.amount_unit) == (1.004461, 18.9614335534, "%")
    quiet = InjectionDetail.get(InjectionDetail.injection == current("001F0102.D"))
    assert json.loads(quiet.flags) == []  # files that agree raise nothing
    # 001F0103.D's SAMPLE.XML is byte for byte 001F0102.D's: stored once, read for both
    again = InjectionDetail.get(InjectionDetail.injection == current("001F0103.D"))
    assert json.loads(again.metadata)["sample"]["SAMPLE.XML"] == "DFA-708-01"
    assert worker.cli("audit", "verify").returncode == 0


def _unpack(data: bytes) -> tuple[list[float], list[float]]:
    import struct
    n = struct.unpack_from("<I", data)[0]
    values = struct.unpack_from(f"<{2 * n}d", data, 4)
    return list(values[:n]), list(values[n:])


def _file_of(chrom: Chromatogram) -> str:
    """The file stem a chromatogram came from, by its signal name (``FID1 A`` ← FID1A.ch)."""
    return chrom.signal.split(",")[0].replace(" ", "") if chrom.signal != "V181" else "V181"


def test_aia_cdf_a_folder_without_report_and_a_broken_signal(
        worker: WorkerProcess, corpus: Path, open_db, tmp_path: Path) -> None:
    """VARIAN1.CDF is an injection with its 8 peaks and trace; a .D folder with signals and no
    report is still an injection, flagged; a truncated .ch inside a folder is rejected with the
    reason while its folder's injection has the rest; a cut-off .cdf is rejected."""
    source = corpus / "agilent-chemstation-folders"
    staging = tmp_path / "staging"
    (staging / "aia").mkdir(parents=True)
    shutil.copy(corpus / "andi-aia" / "VARIAN1.CDF", staging / "aia" / "VARIAN1.CDF")
    (staging / "aia" / "CUT.CDF").write_bytes(
        (corpus / "andi-aia" / "VARIAN1.CDF").read_bytes()[:7000])
    bare = staging / "runs" / "NOREPORT.D"
    bare.mkdir(parents=True)
    for name in ("DAD1A.ch", "DAD1.UV", "SAMPLE.XML", "RUN.LOG", "acq.txt"):
        shutil.copy(source / "002-2-0312650-0713-BrPR.D" / name, bare / name)
    broken = staging / "runs" / "BROKEN.D"
    shutil.copytree(source / "001F0102.D", broken, ignore=shutil.ignore_patterns("*.M"))
    (broken / "TCD2B.ch").write_bytes((broken / "TCD2B.ch").read_bytes()[:20000])
    for folder in ("aia", "runs"):
        shutil.move(str(staging / folder), worker.inbox / folder)
    wait_for(lambda: worker.status()["backlog"] == 0 and not files_under(worker.inbox),
             timeout=120, what="every file final and moved")
    open_db(worker.data)

    rejected = {r.name: r.error for r in SourceFile.select().where(
        SourceFile.state == "rejected")}
    assert set(rejected) == {"CUT.CDF", "TCD2B.ch"}
    assert "truncated or damaged" in rejected["CUT.CDF"]
    assert "truncated" in rejected["TCD2B.ch"]

    cdf = Injection.get(Injection.source_file == SourceFile.get(SourceFile.name == "VARIAN1.CDF"))
    peaks = list(Peak.select().where(Peak.injection == cdf))
    main = max(peaks, key=lambda p: p.area_pct)
    assert len(peaks) == 8 and (round(main.rt_min, 4), round(main.area_pct, 4)) == (
        5.6972, 25.1679)
    assert Chromatogram.get(Chromatogram.injection == cdf).points == 1302

    injection = current_in("runs/NOREPORT.D")
    assert injection.sample.sample_id == "0312650-0713-BrPR"  # SAMPLE.XML names it
    assert Peak.select().where(Peak.injection == injection).count() == 0
    assert Chromatogram.select().where(Chromatogram.injection == injection).count() == 1
    assert Spectrum.select().where(Spectrum.injection == injection).count() == 1
    detail = InjectionDetail.get(InjectionDetail.injection == injection)
    flags = json.loads(detail.flags)
    assert flags[0] == {"flag": "no_integration_report", "folder": "runs/NOREPORT.D"}
    # acq.txt names the folder it acquired into; this copy was renamed, and that is said
    assert flags[1:] == [{"flag": "metadata_disagrees", "fact": "data_file", "values": {
        "acq.txt": "002-2-0312650-0713-BrPR.D", "runs/NOREPORT.D": "NOREPORT.D"}}]
    assert json.loads(detail.metadata)["vial"] == {"DAD1.UV": "2", "RUN.LOG": "2"}

    injection = current_in("runs/BROKEN.D")
    assert Peak.select().where(Peak.injection == injection).count() == 3  # the report's
    assert [c.signal for c in Chromatogram.select().where(
        Chromatogram.injection == injection)] == ["FID1 A"]
    flags = json.loads(InjectionDetail.get(InjectionDetail.injection == injection).flags)
    assert flags[0]["flag"] == "unreadable_file" and flags[0]["file"] == "TCD2B.ch"


def current_in(folder: str) -> Injection:
    return (Injection.select().join(SourceFile)
            .where(Injection.superseded == False,  # noqa: E712
                   SourceFile.path.startswith(f"{folder}/")).get())


def test_a_d_folder_is_taken_only_once_the_instrument_has_finished_writing_it(
        worker: WorkerProcess, corpus: Path, open_db) -> None:
    """ChemStation writes a run's files one after another and appends to its signal file for
    the whole run: nothing of the folder is taken while any file in it (a nested method
    folder's included) is still being written, and then the folder is taken whole."""
    import time

    source = corpus / "agilent-chemstation-folders" / "001F0102.D"
    folder = worker.inbox / "seq" / "001F0102.D"
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("FID1A.ch"))
    signal_bytes = (source / "FID1A.ch").read_bytes()
    with open(folder / "FID1A.ch", "wb") as fh:
        for start in range(0, len(signal_bytes), 4096):  # about 2.5 s, as a run appends
            fh.write(signal_bytes[start:start + 4096])
            fh.flush()
            time.sleep(0.25)
            assert worker.status()["files"]["queued"] + worker.status()["backlog"] == 0
            (folder / "ACQ.M" / "RECALIB.MTH").touch()  # the method folder is written too
    open_db(worker.data)
    wait_for(lambda: worker.status()["backlog"] == 0 and not files_under(worker.inbox),
             timeout=90, what="the folder taken and final")
    assert SourceFile.select().where(SourceFile.state == "rejected").count() == 0
    injection = current("001F0102.D")
    fid = Chromatogram.get(Chromatogram.injection == injection, Chromatogram.signal == "FID1 A")
    assert fid.points == 3600  # the whole signal, not what was there when the report was
    firsts = {r.first_seen for r in SourceFile.select()}
    assert len(firsts) == 1  # registered together, in one batch


def test_a_report_written_after_the_run_makes_the_folder_injection_anew(
        worker: WorkerProcess, corpus: Path, open_db, tmp_path: Path) -> None:
    """Data analysis writes Report.TXT after the acquisition's files: the folder's injection,
    first written from its signals and flagged without a report, is written again with the
    report's peaks and the same signals; the first is superseded, not doubled."""
    source = corpus / "agilent-chemstation-folders" / "002-2-0312650-0713-BrPR.D"
    staging = tmp_path / "staging" / "002-2-0312650-0713-BrPR.D"
    staging.mkdir(parents=True)
    for name in ("DAD1A.ch", "DAD1.UV", "SAMPLE.XML", "RUN.LOG", "CSlbk.ini"):
        shutil.copy(source / name, staging / name)
    (worker.inbox / "seq").mkdir()
    shutil.move(str(staging), worker.inbox / "seq" / staging.name)
    wait_for(lambda: worker.status()["backlog"] == 0 and not files_under(worker.inbox),
             timeout=90, what="the folder without report final")
    open_db(worker.data)
    first = current(staging.name)
    assert Peak.select().where(Peak.injection == first).count() == 0

    shutil.copy(source / "Report.TXT", worker.inbox / "seq" / staging.name / "Report.TXT")
    wait_for(lambda: current(staging.name).id != first.id and worker.status()["backlog"] == 0,
             timeout=90, what="the report's injection")
    now = current(staging.name)
    assert now.source_file.name == "Report.TXT"
    assert Peak.select().where(Peak.injection == now).count() == 10
    assert Chromatogram.select().where(Chromatogram.injection == now).count() == 1
    assert Spectrum.select().where(Spectrum.injection == now).count() == 1
    assert Injection.get_by_id(first.id).superseded
    flags = [f["flag"] for f in json.loads(
        InjectionDetail.get(InjectionDetail.injection == now).flags)]
    assert "no_integration_report" not in flags
    assert SourceFile.select().where(SourceFile.state == "rejected").count() == 0
