"""Records a QA auditor signs: every row provable, every raw byte re-hashed, who and why on each
operator action, backup and restore, reruns that add nothing — with the real worker on real
corpus files, checked by the real ``accu-ingest`` commands."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from support.workers import WorkerProcess, files_under, wait_for

AGILENT = "agilent-1290"
TRACES = "20260113 153049"
FIRST = ("12_Report.csv", "25_Report.csv", "50_Report.csv")  # standards: a first curve
LATER = ("100_Report.csv", "250_Report.csv")  # more standards: every result computed again


def config(root: Path, extra: str = "", scrub_seconds: float = 0) -> Path:
    path = root / "accu-ingest.toml"
    path.write_text('stable_seconds = 0.5\nrescan_seconds = 2.0\nreconcile_seconds = 1.0\n'
                    f'lease_seconds = 20.0\nscrub_seconds = {scrub_seconds}\n' + extra,
                    encoding="utf-8")
    return path


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker", *args, "--data-dir",
                           str(root / "data"), "--inbox", str(root / "inbox")],
                          capture_output=True, text=True, timeout=120, cwd=root)


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    """A real worker's data folder: standards dropped in two rounds (so results are computed
    again when the later ones arrive), traces, and a workbook it cannot read (rejected)."""
    root = tmp_path_factory.mktemp("qa")
    w = WorkerProcess(root, "--config", str(config(root)))
    w.start()
    try:
        for name in FIRST:
            shutil.copy(corpus / AGILENT / name, w.inbox / name)
        shutil.copytree(corpus / AGILENT / TRACES, w.inbox / TRACES)
        shutil.copy(corpus / AGILENT / "STD_Greycap_Targetmol_147291_T7815L_01122026.xlsx",
                    w.inbox / "unreadable.xlsx")
        w.wait_final(3 + 8 + 1)
        for name in LATER:
            shutil.copy(corpus / AGILENT / name, w.inbox / name)
        w.wait_final(3 + 8 + 1 + 2)
    finally:
        assert w.stop() == 0
    return root


@pytest.fixture
def copy(installation: Path, tmp_path: Path) -> Path:
    """A copy of the installation's data folder to tamper with."""
    shutil.copytree(installation / "data", tmp_path / "data",
                    ignore=shutil.ignore_patterns("*.writers", "*.lock"))
    (tmp_path / "inbox").mkdir()
    return tmp_path


def sql(root: Path, statement: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(root / "data" / "accu-ingest.db") as con:
        rows = con.execute(statement).fetchall()
    con.close()
    return rows


def test_recomputed_results_and_every_files_rows_verify(installation: Path, tmp_path: Path
                                                        ) -> None:
    shutil.copytree(installation / "data", tmp_path / "data")
    computed = sql(tmp_path, "SELECT COUNT(*) FROM audit_event WHERE event = 'computed'")[0][0]
    superseded = sql(tmp_path, "SELECT COUNT(*) FROM result WHERE superseded")[0][0]
    assert superseded > 0  # the later standards made every curve result be computed again
    done = cli(tmp_path, "audit", "verify", "--rows", "--raw")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (f"rows intact: 13 files' rows and {computed} result computations match"
            in done.stdout)
    assert "raw intact: 14 stored files" in done.stdout


def test_an_edited_peak_area_is_caught_by_verify_rows(copy: Path) -> None:
    [(peak, path)] = sql(copy, "SELECT p.id, f.path FROM peak p JOIN injection i ON "
                               "p.injection_id = i.id JOIN source_file f ON i.source_file_id = "
                               "f.id WHERE f.path = '25_Report.csv' ORDER BY p.id LIMIT 1")
    sql(copy, f"UPDATE peak SET area = area * 1.02 WHERE id = {peak}")
    assert cli(copy, "audit", "verify").returncode == 0  # the chain alone cannot see it
    done = cli(copy, "audit", "verify", "--rows")
    assert done.returncode == 1, done.stdout
    assert "rows CHANGED: event" in done.stdout and f"({path})" in done.stdout
    assert "rows: 1 mismatch(es)" in done.stdout


def test_an_edited_result_value_is_caught_by_verify_rows(copy: Path) -> None:
    [(result,)] = sql(copy, "SELECT id FROM result WHERE kind = 'calibration_slope' AND NOT "
                            "superseded")
    sql(copy, f"UPDATE result SET value = value + 0.001 WHERE id = {result}")
    done = cli(copy, "audit", "verify", "--rows")
    assert done.returncode == 1, done.stdout
    [line] = [x for x in done.stdout.splitlines() if x.startswith("rows CHANGED")]
    assert "results" in line and str(result) in line
    show = cli(copy, "audit", "show", "25_Report.csv")
    assert show.returncode == 0 and "rows: match" in show.stdout  # the file's own rows are fine


def test_a_flipped_raw_byte_is_caught_by_verify_raw(copy: Path) -> None:
    [(pack, offset, path)] = sql(copy, "SELECT raw_pack, raw_offset, path FROM source_file "
                                       "WHERE path = '50_Report.csv'")
    target = copy / "data" / "raw" / str(pack)
    data = bytearray(target.read_bytes())
    at = int(str(offset)) + 200  # past the record's header, inside the file's bytes
    data[at] ^= 0x01
    target.write_bytes(bytes(data))
    assert cli(copy, "audit", "verify", "--rows").returncode == 0
    done = cli(copy, "audit", "verify", "--raw")
    assert done.returncode == 1, done.stdout
    assert "raw DAMAGED: file" in done.stdout and f"({path})" in done.stdout
    assert "does not match its SHA-256" in done.stdout


def test_retry_without_a_reason_is_one_sentence_and_with_one_records_who_and_why(
        copy: Path) -> None:
    [(rejected,)] = sql(copy, "SELECT id FROM source_file WHERE state = 'rejected'")
    done = cli(copy, "retry", str(rejected))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("accu-ingest: ") and "--reason" in done.stderr
    assert done.stderr.count("\n") == 1
    assert sql(copy, "SELECT COUNT(*) FROM audit_event WHERE event = 'retry'") == [(0,)]

    again = cli(copy, "retry", str(rejected), "--reason", "checking the workbook (CR-7)")
    assert again.returncode == 1  # still unreadable: rejected again
    [(details,)] = sql(copy, "SELECT details FROM audit_event WHERE event = 'retry'")
    user = json.loads(details)
    assert user["reason"] == "checking the workbook (CR-7)"
    assert user["by"].startswith("operator ") and "@" in user["by"]
    [line] = (copy / "data" / "logs" / "accu-ingest-operator.jsonl").read_text().splitlines()
    assert json.loads(line)["reason"] == "checking the workbook (CR-7)"

    exported = cli(copy, "audit", "export", "--since", "2000-01-01", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    [retry] = [r for r in rows if r["event"] == "retry"]
    assert retry["reason"] == "checking the workbook (CR-7)" and retry["by"] == user["by"]
    shown = cli(copy, "audit", "show", str(rejected))
    assert "retry by operator" in shown.stdout and "checking the workbook (CR-7)" in shown.stdout


def test_audit_show_finds_a_file_by_id_sha_or_path_and_export_filters_by_date(
        copy: Path) -> None:
    [(file_id, sha)] = sql(copy, "SELECT id, sha256 FROM source_file "
                                 "WHERE path = '12_Report.csv'")
    for what in (str(file_id), str(sha)[:10], "12_Report.csv"):
        shown = cli(copy, "audit", "show", what)
        assert shown.returncode == 0, shown.stderr
        assert f"file {file_id}: 12_Report.csv" in shown.stdout
        assert " ingested " in shown.stdout and "rows: match" in shown.stdout
    missing = cli(copy, "audit", "show", "no-such.csv")
    assert missing.returncode == 2 and missing.stderr.startswith("accu-ingest: no file")

    everything = json.loads(cli(copy, "audit", "export").stdout)
    assert [e["seq"] for e in everything] == list(range(1, len(everything) + 1))
    assert cli(copy, "audit", "export", "--since", "2999-01-01").stdout.strip() == "[\n]"
    bad = cli(copy, "audit", "export", "--since", "last week")
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_backup_while_running_then_wipe_and_restore_verifies_and_gives_the_same_results(
        installation: Path, tmp_path: Path, corpus: Path) -> None:
    shutil.copytree(installation / "data", tmp_path / "data",
                    ignore=shutil.ignore_patterns("*.writers"))
    settings = config(tmp_path)
    w = WorkerProcess(tmp_path, "--config", str(settings))
    w.start()
    try:
        backup = tmp_path / "backup"
        done = w.cli("backup", str(backup), "--config", str(settings))  # while it runs
        assert done.returncode == 0, done.stderr
        refused = w.cli("restore", str(backup), "--replace", "--reason", "test")
        assert refused.returncode == 2 and "a worker is using this data folder" in refused.stderr
    finally:
        assert w.stop() == 0
    manifest = json.loads((backup / "MANIFEST.json").read_text())
    assert {"accu-ingest.db", "audit.key", "audit.anchor", "config.toml"} <= set(
        manifest["files"])
    assert sum(1 for f in manifest["files"] if f.startswith("raw/packs/")) >= 1
    before = w.cli("export", "--format", "json").stdout
    assert json.loads(before)

    shutil.rmtree(w.data)  # the disk is lost
    restored = w.cli("restore", str(backup), "--reason", "disk replaced (INC-1)")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    verified = w.cli("audit", "verify", "--rows", "--raw")
    assert verified.returncode == 0, verified.stdout
    assert "rows intact" in verified.stdout and "raw intact" in verified.stdout
    assert w.cli("export", "--format", "json").stdout == before
    [(details,)] = sql(tmp_path, "SELECT details FROM audit_event WHERE event = 'restored'")
    assert json.loads(details)["reason"] == "disk replaced (INC-1)"

    # A damaged backup is refused whole, naming the file, and changes nothing.
    pack = next(p for p in manifest["files"] if p.startswith("raw/packs/"))
    with open(backup / pack, "r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    damaged = w.cli("restore", str(backup), "--replace", "--reason", "again")
    assert damaged.returncode == 1 and f"backup DAMAGED: {pack}" in damaged.stdout
    assert not list(w.data.glob("before-restore-*"))


def test_a_rerun_of_a_folder_adds_no_events(tmp_path: Path, corpus: Path) -> None:
    folder = tmp_path / "export"
    shutil.copytree(corpus / AGILENT / TRACES, folder)
    (tmp_path / "inbox").mkdir()
    first = cli(tmp_path, "ingest", str(folder))
    assert first.returncode == 0, first.stdout + first.stderr
    events = sql(tmp_path, "SELECT COUNT(*) FROM audit_event")[0][0]
    for _ in range(3):
        again = cli(tmp_path, "ingest", str(folder))
        assert again.returncode == 0, again.stdout
        assert "8 ingested, 0 rejected (8 unchanged since last time" in again.stdout
    assert sql(tmp_path, "SELECT COUNT(*) FROM audit_event")[0][0] == events
    assert sql(tmp_path, "SELECT COUNT(*) FROM audit_event WHERE event = 'duplicate'") == [(0,)]

    # A file that did change is read again and is a new revision.
    blank = folder / "Blank_1.dx_DAD1A.CSV"
    blank.write_bytes(blank.read_bytes().replace(b"\n", b"\r\n", 1))
    changed = cli(tmp_path, "ingest", str(folder))
    assert "8 ingested, 0 rejected (7 unchanged" in changed.stdout
    assert sql(tmp_path, "SELECT COUNT(*) FROM source_file") == [(9,)]


def test_corrections_need_a_reason_and_are_audited_with_who_when_they_take_effect(
        tmp_path: Path, corpus: Path) -> None:
    (tmp_path / "inbox").mkdir()
    folder = tmp_path / "export"
    folder.mkdir()
    for name in FIRST + LATER:
        shutil.copy(corpus / AGILENT / name, folder / name)
    bare = config(tmp_path, '[methods.default]\nlevel_corrections = {"12" = 12.5}\n')
    refused = cli(tmp_path, "ingest", str(folder), "--config", str(bare))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "reason" in refused.stderr and "[methods.default]" in refused.stderr

    why = config(tmp_path, '[methods.default]\nlevel_corrections = {"12" = 12.5}\n'
                           'reason = "CoA 4711 gives 12.5"\n')
    done = cli(tmp_path, "ingest", str(folder), "--config", str(why))
    assert done.returncode == 0, done.stdout + done.stderr
    [(details,)] = sql(tmp_path, "SELECT details FROM audit_event WHERE event = 'corrections'")
    recorded = json.loads(details)
    assert recorded["methods"]["default"] == {"level_corrections": {"12": 12.5},
                                              "exclude_levels": [],
                                              "reason": "CoA 4711 gives 12.5"}
    assert recorded["by"].startswith("service accu-ingest as ")
    assert recorded["config"] == str(why.resolve())
    choices = [json.loads(d) for (d,) in sql(
        tmp_path, "SELECT details FROM audit_event WHERE event = 'calibration_choices'")]
    assert choices and all(c["reason"] == "CoA 4711 gives 12.5" for c in choices)
    # Started again with the same corrections: nothing new to record.
    cli(tmp_path, "ingest", str(folder), "--config", str(why))
    assert sql(tmp_path, "SELECT COUNT(*) FROM audit_event WHERE event = 'corrections'") == [(1,)]


def test_the_scrub_reports_damage_and_applies_retention(tmp_path: Path, corpus: Path) -> None:
    extra = "canary_seconds = 1\n[retention]\nprocessed_days = 0.00002\ncanary_days = 0.00002\n"
    w = WorkerProcess(tmp_path, "--config", str(config(tmp_path, extra, scrub_seconds=1)))
    packs = w.data / "raw" / "packs" / "2020-01-01"
    packs.mkdir(parents=True)
    orphan = packs / "000000-1-deadbeef.pack"  # what a crash before registering leaves
    orphan.write_bytes(b"accu-raw " + b"0" * 64 + b" 3\nabc")
    os.utime(orphan, (time.time() - 3 * 86400,) * 2)
    w.start()
    try:
        for name in FIRST:
            shutil.copy(corpus / AGILENT / name, w.inbox / name)
        w.wait_final(3)

        def pruned() -> dict[str, object] | None:
            scrub = w.status()["scrub"]
            kept = {p.name for p in files_under(w.data / "processed")} & set(FIRST)
            return scrub if scrub["last_pass"] and not kept and not orphan.exists() else None
        scrub = wait_for(pruned, timeout=60, what="a scrub pass that pruned processed/")
        assert scrub["problems"] == 0
        wait_for(lambda: w.status()["scrub"]["pruned"].get("canary"), timeout=60,
                 what="canary rows pruned")

        [(pack, offset)] = sql(tmp_path, "SELECT raw_pack, raw_offset FROM source_file "
                                         "WHERE path = '12_Report.csv'")
        target = w.data / "raw" / str(pack)
        data = bytearray(target.read_bytes())
        data[int(str(offset)) + 150] ^= 0x20
        target.write_bytes(bytes(data))
        wait_for(lambda: w.status()["scrub"]["problems"] == 1, timeout=60,
                 what="the scrub finding the flipped byte")
        with urllib.request.urlopen(f"http://127.0.0.1:{w.port}/metrics", timeout=10) as r:
            metrics = r.read().decode()
        assert "accu_ingest_scrub_problems 1.0" in metrics
        assert "scrub: raw store problem: file" in w.log.read_text()
    finally:
        assert w.stop() == 0
    what = [json.loads(d)["what"] for (d,) in sql(
        tmp_path, "SELECT details FROM audit_event WHERE event = 'pruned'")]
    assert {"processed", "orphan raw pack", "canary"} <= set(what)
    done = cli(tmp_path, "audit", "verify", "--rows")
    assert done.returncode == 0, done.stdout  # pruned canaries are gone on purpose
    assert "pruned by retention" in done.stdout


def test_on_postgresql_rows_and_raw_blob_rows_are_verified(pg: str, tmp_path: Path,
                                                           corpus: Path) -> None:
    """Scaled out, the digests are computed on PostgreSQL's values and the raw bytes are also
    in ``raw_blob``: both checked, and an edit to either found."""
    (tmp_path / "inbox").mkdir()
    env = {**os.environ, "ACCU_INGEST_QUEUE_SECRET": "qa-records-secret-0123456789"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "worker", *args, "--data-dir",
                               str(tmp_path / "data"), "--database-url", pg],
                              capture_output=True, text=True, timeout=120, env=env)

    folder = tmp_path / "export"
    folder.mkdir()
    for name in FIRST:
        shutil.copy(corpus / AGILENT / name, folder / name)
    assert run("ingest", str(folder)).returncode == 0
    done = run("audit", "verify", "--rows", "--raw")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "and 3 raw_blob rows" in done.stdout

    import psycopg
    with psycopg.connect(pg, autocommit=True) as con:
        con.execute("UPDATE peak SET area = area + 0.5 WHERE id = (SELECT MIN(id) FROM peak)")
        con.execute("UPDATE raw_blob SET data = overlay(data placing '\\x00'::bytea from 50) "
                    "WHERE sha256 = (SELECT MIN(sha256) FROM raw_blob)")
    rows = run("audit", "verify", "--rows")
    assert rows.returncode == 1 and "rows CHANGED: event" in rows.stdout
    raw = run("audit", "verify", "--raw")
    assert raw.returncode == 1 and "raw DAMAGED: raw_blob" in raw.stdout
