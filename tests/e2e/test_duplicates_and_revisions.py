"""Duplicates and revisions through a running worker.

The same bytes again (under another name, or the same name after the first copy was processed)
are a duplicate: audited (a duplicate_copy row each), no new rows, and the copy leaves the inbox
once its original is final, for where the original went. The same path with new bytes
is a new revision: its rows become current, the older ones stay, marked superseded.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from support.reports import GenPeak, random_peaks, report
from support.workers import WorkerProcess, files_under, wait_for

from worker.record.models import AuditEvent, Injection, Peak, Result, Sample, SourceFile


def _peaks(seed: int) -> list[GenPeak]:
    return random_peaks(random.Random(seed), 4)


def _main_pct(peaks: list[GenPeak]) -> float:
    return max(peaks, key=lambda p: p.area_pct).area_pct


def _drop(inbox: Path, rel: str, data: bytes) -> None:
    target = inbox / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name("." + target.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(target)


def _gone_from_inbox(worker: WorkerProcess) -> None:
    wait_for(lambda: not files_under(worker.inbox), timeout=30, what="empty inbox")


def _duplicate_events() -> list[dict]:
    return [json.loads(e.details) for e in AuditEvent.select().where(
        AuditEvent.event == "duplicate").order_by(AuditEvent.seq)]


def test_same_bytes_again_is_an_audited_duplicate_without_new_rows(worker: WorkerProcess,
                                                                    open_db) -> None:
    worker.start()
    data = report(_peaks(1)).encode()
    _drop(worker.inbox, "run 1/S1_Report.csv", data)
    worker.wait_final(1)
    _gone_from_inbox(worker)
    open_db(worker.data)
    before = (Injection.select().count(), Peak.select().count(), Result.select().count())

    _drop(worker.inbox, "run 1/copy of S1_Report.csv", data)  # another name
    wait_for(lambda: len(_duplicate_events()) == 1, timeout=30, what="duplicate event")
    _gone_from_inbox(worker)
    _drop(worker.inbox, "run 1/S1_Report.csv", data)  # the same name, after it was processed
    wait_for(lambda: len(_duplicate_events()) == 2, timeout=30, what="second duplicate event")
    _gone_from_inbox(worker)

    assert [e["path"] for e in _duplicate_events()] == ["run 1/copy of S1_Report.csv",
                                                        "run 1/S1_Report.csv"]
    assert SourceFile.select().count() == 1
    assert (Injection.select().count(), Peak.select().count(), Result.select().count()) == before
    processed = files_under(worker.data / "processed")
    assert len(processed) == 3 and {p.read_bytes() for p in processed} == {data}
    worker.stop()
    worker.start()  # a restart neither reads them again nor records them again
    wait_for(lambda: worker.status()["files"]["ingested"] == 1, what="status after restart")
    assert len(_duplicate_events()) == 2
    assert worker.cli("audit", "verify").returncode == 0


def test_same_path_new_bytes_is_a_revision_that_supersedes(worker: WorkerProcess,
                                                           open_db) -> None:
    worker.start()
    first, second = _peaks(2), _peaks(3)
    assert _main_pct(first) != _main_pct(second)
    _drop(worker.inbox, "run 2/S2_Report.csv", report(first).encode())
    worker.wait_final(1)
    _gone_from_inbox(worker)
    _drop(worker.inbox, "run 2/S2_Report.csv", report(second).encode())
    worker.wait_final(2)
    _gone_from_inbox(worker)

    open_db(worker.data)
    old, new = SourceFile.select().order_by(SourceFile.id)
    assert new.previous_id == old.id and new.path == old.path
    sample = Sample.get(Sample.sample_id == "S2")
    injections = {i.source_file_id: i for i in sample.injections}
    assert injections[old.id].superseded and not injections[new.id].superseded
    assert Peak.select().where(Peak.injection == injections[old.id]).count() == 4  # kept
    purity = Result.select().where(Result.sample == sample, Result.kind == "purity")
    current = [r for r in purity if not r.superseded]
    history = [r for r in purity if r.superseded]
    assert [r.value for r in current] == [_main_pct(second)]
    assert [r.value for r in history] == [_main_pct(first)]
    per_injection = Result.select().where(Result.kind == "purity_injection",
                                          Result.superseded == False)  # noqa: E712
    assert [r.injection_id for r in per_injection] == [injections[new.id].id]
    events = [e.event for e in AuditEvent.select().where(AuditEvent.source_file_id == new.id)]
    assert "revision_superseded" in events
    assert json.loads(AuditEvent.get(AuditEvent.event == "stored",
                                     AuditEvent.source_file_id == new.id).details)[
        "revision_of"] == old.id
    results = json.loads(worker.cli("results", "--json", "--sample", "S2").stdout)
    assert [r["value"] for r in results if r["kind"] == "purity"] == [_main_pct(second)]
    assert worker.cli("audit", "verify").returncode == 0


def test_two_copies_taken_in_one_batch_are_one_file_and_one_duplicate(worker: WorkerProcess,
                                                                       open_db) -> None:
    data = report(_peaks(7)).encode()
    _drop(worker.inbox, "run 1/S7_Report.csv", data)  # both there before the start-up scan,
    _drop(worker.inbox, "run 1/S7 copy_Report.csv", data)  # so they are taken together
    worker.start()
    worker.wait_final(1)
    _gone_from_inbox(worker)
    open_db(worker.data)
    assert SourceFile.select().count() == 1
    assert Injection.select().count() == 1
    assert len(_duplicate_events()) == 1
    raw = files_under(worker.data / "raw")
    row = SourceFile.get()
    assert [p.relative_to(worker.data / "raw").as_posix() for p in raw] == [row.raw_pack]
    assert raw[0].read_bytes() == f"accu-raw {row.sha256} {len(data)}\n".encode() + data


def test_a_copy_dropped_while_its_original_is_in_flight_follows_its_original_to_quarantine(
        worker: WorkerProcess, open_db) -> None:
    """The copy waits in the inbox while the original is queued (only a watcher runs: nothing
    consumes), is not recorded again by rescans, and once the original is rejected goes to
    quarantine/ beside it — not to processed/."""
    import subprocess
    import sys

    bad = b"Sample Name:,S9\r\nHeight,Area,Area%,RT [min]\r\n1.0,2.0,oops,3.0\r\n"
    watch = subprocess.Popen(
        [sys.executable, "-m", "worker", "watch", "--inbox", str(worker.inbox), "--data-dir",
         str(worker.data), "--port", str(worker.port), *worker.extra],
        stdout=open(worker.log, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
    try:
        wait_for(worker.alive, timeout=30, what="watcher /livez")
        _drop(worker.inbox, "run 9/S9_Report.csv", bad)
        wait_for(lambda: worker.status()["files"]["queued"] == 1, timeout=30, what="queued")
        _drop(worker.inbox, "elsewhere/S9 copy_Report.csv", bad)
        wait_for(lambda: worker.status()["duplicates"] == 1, timeout=30, what="the copy seen")
        open_db(worker.data)
        import time
        time.sleep(5)  # two rescans (rescan_seconds = 2) and many disposal polls
        assert (worker.inbox / "elsewhere" / "S9 copy_Report.csv").exists()  # waits
        assert worker.status()["duplicates"] == 1 and len(_duplicate_events()) == 1
    finally:
        watch.terminate()
        watch.wait(timeout=60)
    worker.start()  # now a consumer rejects the original; the copy follows it
    wait_for(lambda: not files_under(worker.inbox), timeout=60, what="empty inbox")
    quarantine = worker.data / "quarantine"
    assert (quarantine / "run 9" / "S9_Report.csv").exists()
    assert (quarantine / "elsewhere" / "S9 copy_Report.csv").exists()
    assert not (worker.data / "processed").exists() or not files_under(
        worker.data / "processed")


    def followed() -> list[str]:
        moved = [json.loads(e.details) for e in AuditEvent.select().where(
            AuditEvent.event == "moved").order_by(AuditEvent.seq)]
        return [m["path"] for m in moved if m["action"] == "duplicate move"
                and m["follows"] == "rejected"]

    # The move is recorded just after the file leaves the inbox: wait for the record.
    wait_for(lambda: followed() != [], timeout=30, what="the copy's move recorded")
    assert followed() == ["elsewhere/S9 copy_Report.csv"]
