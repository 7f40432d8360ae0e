"""Notifications and job reports of a real worker, received by real local servers: an HTTP
server (apprise's json:// target and the job-report webhook) and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.receivers import HttpReceiver, SmtpReceiver
from support.workers import WorkerProcess, free_port, wait_for

GOOD = ("agilent-1290", "12_Report.csv")
TIMINGS = {"stable_seconds": 0.3, "rescan_seconds": 2.0, "reconcile_seconds": 1.0,
           "lease_seconds": 20.0, "notify_group_seconds": 1.5, "notify_poll_seconds": 0.3,
           "dispose_settle_seconds": 1.0}


def config(root: Path, targets: list[dict[str, object]], **settings: object) -> Path:
    lines = [f"{k} = {json.dumps(v)}" for k, v in {**TIMINGS, **settings}.items()]
    for t in targets:
        lines.append("[[notify]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in t.items()]
    path = root / "accu-ingest.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def http() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver(free_port())
    yield receiver
    receiver.close()


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    workers: list[WorkerProcess] = []
    yield workers
    for w in workers:
        if w.proc is not None and w.proc.poll() is None:
            w.stop(signal.SIGKILL)


def notes(http: HttpReceiver, word: str) -> list[dict[str, str]]:
    """apprise's json:// bodies at /notify whose title or message holds ``word``."""
    return [p.body for p in http.at("/notify")
            if word in p.body["title"] or word in p.body["message"]]


def drop_bad(inbox: Path, n: int, folder: str = "bad") -> None:
    (inbox / folder).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (inbox / folder / f"junk_{i:04d}.txt").write_text(f"not a chromatogram {i}\n")


def metric(worker: WorkerProcess, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def test_a_run_with_rejections_a_stalled_backlog_and_a_finished_job(
        tmp_path: Path, corpus: Path, http: HttpReceiver, smtp: SmtpReceiver,
        started: list[WorkerProcess]) -> None:
    cfg = config(tmp_path, [
        {"url": f"json://127.0.0.1:{http.port}/notify", "name": "hook"},
        {"url": f"mailto://127.0.0.1:{smtp.port}?from=worker@lab.example&to=qa@lab.example"
                "&mode=insecure", "name": "qa-mail", "events": ["rejected", "backlog"]},
    ], backlog_max_minutes=0.05, job_settle_seconds=2.0,
        job_report_url=f"http://127.0.0.1:{http.port}/jobs", consumer_processes=1)
    worker = WorkerProcess(tmp_path, "--config", str(cfg)).start()
    started.append(worker)

    drop_bad(worker.inbox, 3)
    worker.wait_final(3)
    [rejected] = wait_for(lambda: notes(http, "rejected"), timeout=30, what="rejection note")
    assert "3 files rejected" in rejected["title"]
    ids = [str(i) for i in range(1, 4)]
    for line in ("junk_0000.txt: unrecognised format", "accu-ingest retry --all-rejected"):
        assert line in rejected["message"]
    for file_id in ids:  # the exact command for each file, pointed at this installation
        assert f"accu-ingest retry {file_id} --config {cfg}" in rejected["message"]
    mail = wait_for(lambda: [m for m in smtp.mails if "rejected" in m.subject], timeout=30,
                    what="rejection mail")[0]
    assert mail.to == ["qa@lab.example"] and "junk_0002.txt" in mail.body

    # The backlog stalls: the consumer process is frozen while files arrive.
    [pid] = worker.status()["consumer_processes"]["pids"]
    os.kill(pid, signal.SIGSTOP)
    try:
        (worker.inbox / "job1").mkdir()
        (worker.inbox / "job1" / GOOD[1]).write_bytes((corpus / GOOD[0] / GOOD[1]).read_bytes())
        problem = wait_for(lambda: notes(http, "PROBLEM backlog"), timeout=60,
                           what="backlog problem")[0]
        assert "1 file(s) unfinished" in problem["message"]
        assert f"accu-ingest status --config {cfg}" in problem["message"]
        wait_for(lambda: [m for m in smtp.mails if "backlog" in m.subject], timeout=30,
                 what="backlog mail")
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: notes(http, "resolved backlog"), timeout=60, what="backlog resolved")

    # The job settles: its report is written and posted with an idempotency key.
    posted = wait_for(lambda: http.at("/jobs"), timeout=60, what="job report POST")
    report = posted[0].body
    assert posted[0].headers["Idempotency-Key"] == report["idempotency_key"]
    assert report["job"]["name"] == "job1"
    sha = hashlib.sha256((corpus / GOOD[0] / GOOD[1]).read_bytes()).hexdigest()
    assert [(f["path"], f["sha256"]) for f in report["files"]] == [(f"job1/{GOOD[1]}", sha)]
    [sample] = report["samples"]
    purity = next(r for r in sample["results"] if r["kind"] == "purity")
    assert purity["value"] == 72.7608
    assert report["lims_rows"][0]["source_sha256"] == [sha]
    on_disk = list((worker.data / "reports" / "jobs").glob("job-*-job1.json"))
    assert len(on_disk) == 1
    assert json.loads(on_disk[0].read_text())["idempotency_key"] == report["idempotency_key"]
    assert wait_for(lambda: notes(http, "job job1 finished"), timeout=30, what="job note")
    assert not list((worker.data / "reports" / "outbox").glob("*.json"))
    assert metric(worker, "accu_ingest_notify_sent_total") >= 4
    assert metric(worker, "accu_ingest_notify_failures_total") == 0
    time.sleep(3)  # settled again with nothing new: no second report
    assert len(http.at("/jobs")) == 1


def test_a_burst_of_500_rejections_is_one_message(
        tmp_path: Path, http: HttpReceiver, started: list[WorkerProcess]) -> None:
    cfg = config(tmp_path, [{"url": f"json://127.0.0.1:{http.port}/notify",
                             "events": ["rejected"]}], notify_group_seconds=3.0)
    worker = WorkerProcess(tmp_path, "--config", str(cfg)).start()
    started.append(worker)
    drop_bad(worker.inbox, 500)
    worker.wait_final(500, timeout=180)
    [note] = wait_for(lambda: notes(http, "rejected"), timeout=60, what="rejection note")
    time.sleep(5)  # nothing more comes
    assert len(http.at("/notify")) == 1
    assert "500 files rejected" in note["title"]
    assert "… and 490 more" in note["message"]
    assert note["message"].count("accu-ingest retry ") == 11  # ten files, and --all-rejected


def test_a_receiver_that_is_down_delays_nothing_and_is_retried(
        tmp_path: Path, corpus: Path, started: list[WorkerProcess]) -> None:
    port = free_port()  # nothing listens there yet
    cfg = config(tmp_path, [{"url": f"json://127.0.0.1:{port}/notify", "name": "down"}],
                 job_settle_seconds=1.0, job_report_url=f"http://127.0.0.1:{port}/jobs")
    worker = WorkerProcess(tmp_path, "--config", str(cfg)).start()
    started.append(worker)
    drop_bad(worker.inbox, 20)
    (worker.inbox / "job2").mkdir()
    (worker.inbox / "job2" / GOOD[1]).write_bytes((corpus / GOOD[0] / GOOD[1]).read_bytes())
    began = time.monotonic()
    status = worker.wait_final(21, timeout=60)
    assert status["files"]["ingested"] == 1 and status["files"]["rejected"] == 20
    took = time.monotonic() - began
    wait_for(lambda: metric(worker, "accu_ingest_notify_failures_total") >= 1, timeout=30,
             what="a failed attempt counted")
    wait_for(lambda: list((worker.data / "reports" / "outbox").glob("*.json")), timeout=30,
             what="the job report waiting in the outbox")
    assert took < 30, f"ingest took {took:.1f} s with the receiver down"

    receiver = HttpReceiver(port)  # it comes back: what was owed arrives
    try:
        # what waited goes out as one digest (the rejections, and the job that finished)
        [note] = wait_for(lambda: notes(receiver, "rejected"), timeout=60, what="retried note")
        assert "20 files rejected" in note["title"] + note["message"]
        posted = wait_for(lambda: receiver.at("/jobs"), timeout=60, what="retried report")
        assert posted[0].body["job"]["name"] == "job2"
        wait_for(lambda: not list((worker.data / "reports" / "outbox").glob("*.json")),
                 timeout=10, what="outbox emptied")
    finally:
        receiver.close()


def test_notify_test_command(tmp_path: Path, http: HttpReceiver) -> None:
    cfg = config(tmp_path, [{"url": f"json://127.0.0.1:{http.port}/notify", "name": "hook"},
                            {"url": f"json://127.0.0.1:{free_port()}/x", "name": "nobody"}])
    w = WorkerProcess(tmp_path)
    done = w.cli("notify", "test", "--config", str(cfg))
    assert done.returncode == 1, done.stderr
    assert "ok     hook" in done.stdout and "FAILED nobody" in done.stdout
    [note] = notes(http, "test notification")
    assert "accu-ingest doctor --config" in note["message"]
    assert w.cli("notify", "test", "--config", str(cfg), "--target", "hook").returncode == 0
    none = w.cli("notify", "test")
    assert none.returncode == 2 and "[[notify]]" in none.stderr


def test_a_vanished_inbox_and_a_crash_looping_consumer_are_told_and_resolved(
        tmp_path: Path, http: HttpReceiver, started: list[WorkerProcess]) -> None:
    cfg = config(tmp_path, [{"url": f"json://127.0.0.1:{http.port}/notify"}],
                 consumer_processes=1)
    worker = WorkerProcess(tmp_path, "--config", str(cfg)).start()
    started.append(worker)

    away = tmp_path / "inbox-away"
    worker.inbox.rename(away)
    problem = wait_for(lambda: notes(http, "PROBLEM inbox"), timeout=30, what="inbox problem")
    assert f"inbox {worker.inbox} is missing or unreadable" in problem[0]["message"]
    away.rename(worker.inbox)
    wait_for(lambda: notes(http, "resolved inbox"), timeout=30, what="inbox resolved")

    for _ in range(3):  # killed again each time the supervisor starts it
        [pid] = wait_for(lambda: worker.status()["consumer_processes"]["pids"], timeout=30,
                         what="a consumer process")
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda p=pid: p not in worker.status()["consumer_processes"]["pids"],
                 timeout=30, what="the consumer gone")
    note = wait_for(lambda: notes(http, "PROBLEM consumers"), timeout=60,
                    what="consumers problem")[0]
    assert "restarted 3 times in the last 10 min" in note["message"]
    assert len(notes(http, "PROBLEM consumers")) == 1
