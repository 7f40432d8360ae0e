"""The operator's tools — export (formula cells neutralised), backup, JSON log files,
and the one-shot ingest's progress output on and off a terminal."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import pty
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from support.workers import WorkerProcess, wait_for

from worker.results.export import neutralise, write_csv

FORMULA = "=SUM(1;2)*10"


def report(sample: str) -> bytes:
    return (f"Sample Name:,{sample}\r\n"
            "Height,Area,Area%,Peak Begin Time,Peak End Time,RT [min]\r\n"
            "10.0,90.0,90.0,1.00,1.20,1.10\r\n"
            "1.0,10.0,10.0,2.00,2.20,2.10\r\n"
            "Sum,100.0,,,,\r\n").encode()


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker", *args, "--data-dir",
                           str(tmp_path / "data"), "--inbox", str(tmp_path / "inbox")],
                          capture_output=True, text=True, timeout=120)


def test_export_neutralises_formula_cells(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "evil.csv").write_bytes(report(FORMULA))
    (drop / "at.csv").write_bytes(report("@SUM(A1)"))
    assert cli(tmp_path, "ingest", str(drop)).returncode == 0

    out = tmp_path / "peaks.csv"
    done = cli(tmp_path, "export", "--what", "peaks", "--output", str(out))
    assert done.returncode == 0 and "4 peaks written" in done.stderr
    text = out.read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["sample"] for r in rows} == {"'" + FORMULA, "'@SUM(A1)"}
    assert not any(cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r.values())
    assert {r["area"] for r in rows} == {"90.0", "10.0"}  # numbers stay numbers

    results = json.loads(cli(tmp_path, "export", "--format", "json").stdout)
    purity = [r for r in results if r["kind"] == "purity"]
    assert sorted(r["value"] for r in purity) == [90.0, 90.0]
    assert {r["sample"] for r in purity} == {FORMULA, "@SUM(A1)"}  # JSON as is
    later = cli(tmp_path, "export", "--since", "2999-01-01", "--format", "json")
    assert json.loads(later.stdout) == []
    bad = cli(tmp_path, "export", "--since", "yesterday")
    assert bad.returncode == 2 and "expected a date like 2026-01-13" in bad.stderr


def test_csv_cells_text_versus_numbers() -> None:
    out = io.StringIO()
    write_csv([{"a": "-cmd|' /C calc'!A0", "b": -1.5, "c": "\tx", "d": "\r=1", "e": "+1",
                "f": "plain", "g": None}], list("abcdefg"), out)
    assert out.getvalue().splitlines()[1].split(",")[1] == "-1.5"  # a number, unquoted
    cells = list(csv.reader(io.StringIO(out.getvalue())))[1]
    assert cells == ["'-cmd|' /C calc'!A0", "-1.5", "'\tx", "'\r=1", "'+1", "plain", ""]
    assert neutralise(-3) == -3 and neutralise("-3") == "'-3"


def test_backup_is_a_consistent_copy_of_a_live_database(worker: WorkerProcess,
                                                        corpus: Path) -> None:
    worker.start()
    for name in ("12_Report.csv", "25_Report.csv"):
        (worker.inbox / name).write_bytes((corpus / "agilent-1290" / name).read_bytes())
    worker.wait_final(2)
    dest = worker.root / "backup" / "2026-12-06"
    done = worker.cli("backup", str(dest))  # while the worker runs
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(dest / "accu-ingest.db") as copy:
        assert copy.execute("SELECT COUNT(*) FROM source_file WHERE state='ingested'"
                            ).fetchone() == (2,)
    again = worker.cli("backup", str(dest))
    assert again.returncode == 2 and "exists" in again.stderr
    [action] = (worker.data / "logs" / "accu-ingest-operator.jsonl").read_text().splitlines()
    assert json.loads(action)["action"] == "backup"
    assert json.loads(action)["dest"] == str(dest)

    # The worker's stdout is a file, not a terminal: JSON lines under data/logs.
    log = worker.data / "logs" / "accu-ingest-run.jsonl"
    entries = wait_for(lambda: log.is_file() and log.read_text().splitlines(), timeout=10,
                       what="JSON log lines")
    first = json.loads(entries[0])
    assert first["level"] == "INFO" and "accu-ingest run" in first["msg"]
    assert all(json.loads(line)["ts"].endswith("+00:00") for line in entries)


def test_one_shot_ingest_is_quiet_off_a_terminal_and_shows_progress_on_one(
        tmp_path: Path, corpus: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    for name in ("12_Report.csv", "25_Report.csv", "50_Report.csv"):
        (drop / name).write_bytes((corpus / "agilent-1290" / name).read_bytes())
    (drop / "broken.csv").write_bytes(report("cut").rsplit(b"Sum", 1)[0])  # no Sum row
    piped = cli(tmp_path / "a", "ingest", str(drop))
    assert piped.stdout.splitlines()[-1] == "3 ingested, 1 rejected"
    assert len(piped.stdout.splitlines()) == 2 and piped.stdout.startswith("REJECTED drop/broken")

    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "worker", "ingest", str(drop), "--data-dir",
                             str(tmp_path / "b" / "data")], stdout=child, stderr=child,
                            env={**os.environ, "COLUMNS": "120", "TERM": "xterm"})
    os.close(child)
    screen = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    proc.wait(timeout=60)
    os.close(main)
    text = screen.decode(errors="replace")
    assert "4/4 files" in text or "3/4 files" in text  # the bar, drawn on the terminal
    assert "REJECTED drop/broken.csv" in text and "3 ingested, 1 rejected" in text


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_disk_under_the_log_file_is_said_once_not_per_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    from worker.runtime.logs import QuietRotatingFileHandler

    handler = QuietRotatingFileHandler("/dev/full", maxBytes=0, backupCount=0)
    logger = logging.getLogger("accu-ingest-test-full-disk")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for n in range(5):
            logger.error("line %d", n)
    finally:
        logger.removeHandler(handler)
        handler.close()
    err = capsys.readouterr().err
    assert err.count("cannot write the log file /dev/full") == 1
    assert "Traceback" not in err
