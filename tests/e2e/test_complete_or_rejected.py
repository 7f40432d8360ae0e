"""Complete or rejected: the bad-input catalogue, each case its own test, through one running
worker.

Every static case is dropped into the inbox of one worker (max_file_mb = 1) at once; each test
then checks what became of its file. Valid-but-unusual files (BOM, UTF-16, cp1252, CR/CRLF line
ends, decimal commas, quoted numbers, odd names) must be ingested with exactly the numbers they
print; the rest must land in data/quarantine/ with a reason naming the line and the cause, while
the worker keeps running. Symlinks, files that vanish and files replaced while being read are
driven live against the same worker.
"""

from __future__ import annotations

import codecs
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.reports import HEADER, GenPeak, random_peaks, report
from support.workers import WorkerProcess, files_under, wait_for, write_config

from worker.intake import watcher
from worker.record import db, store
from worker.record.models import AuditEvent, Injection, Peak, SourceFile
from worker.settings import Settings

TABLE_LINE = 15  # generated reports: 14 method lines, then the table header


@dataclass(frozen=True)
class Case:
    name: str  # file name in the inbox
    data: bytes
    peaks: list[GenPeak] | None = None  # expected peaks when it must be ingested
    cause: str = ""  # words the rejection reason must contain
    line: int | None = None  # the line the reason must name


def _peaks(seed: int, n: int = 4) -> list[GenPeak]:
    return random_peaks(random.Random(seed), n)


def _lines(peaks: list[GenPeak], **kw: object) -> list[str]:
    return report(peaks, **kw).split("\n")  # type: ignore[arg-type]


def _edit_cell(seed: int, row: int, column: int, value: str) -> bytes:
    lines = _lines(_peaks(seed))
    cells = lines[TABLE_LINE + row - 1].split(",")  # row 1 is on line TABLE_LINE + 1
    cells[column] = value
    lines[TABLE_LINE + row - 1] = ",".join(cells)
    return "\n".join(lines).encode()


def _without_rt(seed: int) -> bytes:
    lines = _lines(_peaks(seed))
    return "\n".join(line.rsplit(",", 1)[0] if TABLE_LINE - 1 <= i < TABLE_LINE + 4 else line
                     for i, line in enumerate(lines)).encode()


def _header_twice(seed: int) -> bytes:
    lines = _lines(_peaks(seed))
    return "\n".join([*lines[:-1], "", ",".join(HEADER), lines[TABLE_LINE], ""]).encode()


def _long_line(seed: int) -> bytes:
    lines = _lines(_peaks(seed))
    lines[TABLE_LINE] = lines[TABLE_LINE] + "," + "7" * 300_000  # the first peak row
    return "\n".join(lines).encode()


def _valid() -> list[Case]:
    text = {i: _peaks(100 + i, 3 + i % 4) for i in range(12)}
    names = ["Probe µ ü 測試 01_Report.csv", "sample  with   spaces _Report.csv",
             "L" * 230 + "_Report.csv"]
    return [
        Case("utf8_bom_Report.csv", codecs.BOM_UTF8 + report(text[0]).encode(), text[0]),
        Case("utf16le_Report.csv", codecs.BOM_UTF16_LE + report(text[1]).encode("utf-16-le"),
             text[1]),
        Case("utf16be_Report.csv", codecs.BOM_UTF16_BE + report(text[2]).encode("utf-16-be"),
             text[2]),
        Case("cp1252_Report.csv", report(text[3]).encode("cp1252"), text[3]),
        Case("crlf_Report.csv", report(text[4], eol="\r\n").encode(), text[4]),
        Case("cr_only_Report.csv", report(text[5], eol="\r").encode(), text[5]),
        Case("semicolon_Report.csv",
             report(text[6], delimiter=";", decimal_comma=True).encode("cp1252"), text[6]),
        Case("quoted_Report.csv", report(text[7], quote=True).encode(), text[7]),
        *(Case(name, report(text[8 + i]).encode(), text[8 + i]) for i, name in enumerate(names)),
    ]


def _rejected() -> list[Case]:
    first_row = TABLE_LINE + 1
    sum_line = TABLE_LINE + 5
    return [
        Case("empty_Report.csv", b"", cause="empty"),
        Case("garbage_Report.csv", b"\x00\x01\x02PK" + random.Random(1).randbytes(2000),
             cause="binary content"),
        Case("oversized_Report.csv", report(_peaks(2)).encode() * 1500,  # about 1.5 MiB
             cause="over the 1 MiB limit (max_file_mb)"),
        Case("no_rt_column_Report.csv", _without_rt(3), cause="RT", line=TABLE_LINE),
        Case("text_cell_Report.csv", _edit_cell(4, 2, 1, "12.3abc"), cause="'12.3abc' is not a "
             "number", line=first_row + 1),
        Case("nan_Report.csv", _edit_cell(5, 1, 1, "NaN"), cause="'NaN' is not a number",
             line=first_row),
        Case("inf_Report.csv", _edit_cell(6, 3, 0, "inf"), cause="'inf' is not a number",
             line=first_row + 2),
        Case("negative_area_Report.csv", _edit_cell(7, 1, 1, "-5.0000"), cause="Area",
             line=first_row),
        Case("header_twice_Report.csv", _header_twice(8), cause="second peak-table header",
             line=sum_line + 2),
        Case("zero_peaks_Report.csv", report([], total="0.0000").encode(), cause="zero peaks",
             line=TABLE_LINE + 1),
        Case("sum_off_Report.csv", report(_peaks(9), total="123.4567").encode(),
             cause="disagrees", line=sum_line),
        Case("long_line_Report.csv", _long_line(10), cause="row has 7 cells", line=first_row),
        Case("B" * 236 + "_Report.csv", _edit_cell(11, 1, 1, "x"), cause="'x' is not a number",
             line=first_row),
    ]


VALID, REJECTED = _valid(), _rejected()


class Catalogue:
    def __init__(self, worker: WorkerProcess) -> None:
        self.worker = worker

    def row(self, name: str) -> SourceFile:
        return SourceFile.get(SourceFile.name == name)


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalogue]:
    root = tmp_path_factory.mktemp("catalogue")
    worker = WorkerProcess(root, "--config", str(write_config(root, max_file_mb=1)))
    worker.start()
    for case in VALID + REJECTED:
        (worker.inbox / case.name).write_bytes(case.data)
    worker.wait_final(len(VALID) + len(REJECTED), timeout=90)
    # Rejected files leave the inbox once unchanged for dispose_settle_seconds.
    wait_for(lambda: not files_under(worker.inbox), timeout=60, what="an empty inbox")
    database = db.open_database(Settings(inbox=worker.inbox, data_dir=worker.data))
    try:
        yield Catalogue(worker)
    finally:
        database.close()
        worker.stop()


@pytest.mark.parametrize("case", VALID, ids=lambda c: c.name[:40])
def test_valid_but_unusual_is_ingested_with_its_numbers(catalogue: Catalogue, case: Case) -> None:
    row = catalogue.row(case.name)
    assert row.state == "ingested", row.error
    (injection,) = Injection.select().where(Injection.source_file == row)
    got = [(p.height, p.area, p.area_pct, p.begin_min, p.end_min, p.rt_min)
           for p in Peak.select().where(Peak.injection == injection).order_by(Peak.number)]
    assert case.peaks is not None
    assert got == [(p.height, p.area, p.area_pct, p.begin, p.end, p.rt) for p in case.peaks]
    moved = catalogue.worker.data / "processed" / case.name
    wait_for(moved.exists, timeout=10, what=f"{case.name} in processed/")
    assert moved.read_bytes() == case.data
    assert not (catalogue.worker.inbox / case.name).exists()


@pytest.mark.parametrize("case", REJECTED, ids=lambda c: c.name[:40])
def test_bad_input_is_quarantined_with_line_and_cause(catalogue: Catalogue, case: Case) -> None:
    row = catalogue.row(case.name)
    assert row.state == "rejected"
    assert case.cause in row.error
    assert row.error_line == case.line
    assert Injection.select().where(Injection.source_file == row).count() == 0
    quarantined = [p for p in files_under(catalogue.worker.data / "quarantine")
                   if p.read_bytes() == case.data] if case.data else [
        p for p in files_under(catalogue.worker.data / "quarantine")
        if p.stat().st_size == 0]
    assert len(quarantined) == 1
    reason = quarantined[0].with_name(quarantined[0].name + ".reason.txt")
    if not reason.exists():  # the name was too long to take ".reason.txt" as it is
        (reason,) = [p for p in quarantined[0].parent.glob("*.reason.txt")
                     if f"file: {case.name}\n" in p.read_text(encoding="utf-8")]
    text = reason.read_text(encoding="utf-8")
    assert case.cause in text
    if case.line is not None:
        assert f"reason: line {case.line}: " in text
    assert not (catalogue.worker.inbox / case.name).exists()
    assert catalogue.worker.alive()


def _settle(worker: WorkerProcess) -> None:
    """Long enough for the stability gate, a rescan and the consumer to have acted."""
    time.sleep(3.0)
    assert worker.alive()


def test_symlink_pointing_outside_is_not_followed(catalogue: Catalogue, tmp_path: Path) -> None:
    outside = tmp_path / "secret_Report.csv"
    data = report(_peaks(40)).encode()
    outside.write_bytes(data)
    link = catalogue.worker.inbox / "link_Report.csv"
    link.symlink_to(outside)
    _settle(catalogue.worker)
    assert SourceFile.get_or_none(SourceFile.name == "link_Report.csv") is None
    assert outside.read_bytes() == data and link.is_symlink()
    link.unlink()


def test_file_deleted_between_event_and_read_leaves_no_trace(catalogue: Catalogue) -> None:
    before = AuditEvent.select().count()
    path = catalogue.worker.inbox / "vanishing_Report.csv"
    path.write_bytes(report(_peaks(41)).encode())
    path.unlink()  # the event is queued; by the time the gate looks the file is gone
    _settle(catalogue.worker)
    assert SourceFile.get_or_none(SourceFile.name == "vanishing_Report.csv") is None
    assert AuditEvent.select().count() == before


def _replace_repeatedly(path: Path, contents: list[bytes], pause: float) -> None:
    for data in contents:
        tmp = path.with_name("." + path.name + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        time.sleep(pause)


def test_file_replaced_while_being_read_only_final_bytes_count(catalogue: Catalogue) -> None:
    path = catalogue.worker.inbox / "replaced_Report.csv"
    versions = [report(_peaks(50 + i)).encode() for i in range(8)]
    _replace_repeatedly(path, versions, pause=0.2)
    # Each replacement is a complete, closed file: one taken between two replacements is a
    # revision of its own. What must never happen is a mix of two versions, or a version lost
    # at the end: every registered file is one whole version and the last one is current.
    wait_for(lambda: files_under(catalogue.worker.inbox) == [], what="replaced file taken")
    rows = list(SourceFile.select().where(SourceFile.name == "replaced_Report.csv")
                .order_by(SourceFile.id))
    whole = {store.sha256_of(v) for v in versions}
    assert rows and all(r.sha256 in whole for r in rows)
    assert rows[-1].sha256 == store.sha256_of(versions[-1])
    wait_for(lambda: SourceFile.get_by_id(rows[-1].id).state == "ingested", what="last version")


def test_take_refuses_a_file_that_changed_since_the_gate(tmp_path: Path) -> None:
    """The read itself re-checks size and mtime: bytes that changed after the stability gate
    looked are never registered (the gate simply waits again)."""
    settings = Settings(inbox=tmp_path / "inbox", data_dir=tmp_path / "data")
    settings.inbox.mkdir()
    path = settings.inbox / "moving_Report.csv"
    path.write_bytes(report(_peaks(60)).encode())
    st = path.stat()
    cand = watcher.Candidate(st.st_size, st.st_mtime_ns, time.time(), time.time())
    path.write_bytes(report(_peaks(61)).encode())  # replaced after the gate's last look
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert watcher.take(settings, path, path.name, cand, "test") is None
    assert cand.size == -1  # the stability window starts again
    assert not (settings.data_dir / "raw").exists() or not files_under(settings.data_dir / "raw")
