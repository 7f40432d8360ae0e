"""/metrics parses as Prometheus text and agrees with the ledger, also after a restart;
the canary goes through the whole pipeline, shows in /status and /metrics, and stays out of
exports and file counts."""

from __future__ import annotations

import csv
import io
import json
import shutil
import urllib.request
from datetime import UTC
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from support.workers import WorkerProcess, wait_for, write_config

from worker.record.canaries import CANARY_DIR
from worker.record.models import INGESTED, REJECTED, SourceFile
from worker.runtime import health
from worker.runtime.metrics import reason_category


def scrape(worker: WorkerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def ledger_figures() -> dict[str, float]:
    real = SourceFile.select().where(~SourceFile.path.startswith(CANARY_DIR + "/"))
    ingested = [r for r in real if r.state == INGESTED]
    return {
        "ingested": len(ingested),
        "rejected": sum(1 for r in real if r.state == REJECTED),
        "latency_sum": sum((r.finished_at - r.first_seen).total_seconds() for r in ingested),
        "last": max(r.finished_at for r in ingested).replace(tzinfo=UTC).timestamp(),
    }


def check_against_ledger(worker: WorkerProcess) -> dict:
    m = scrape(worker)
    figures = ledger_figures()
    assert m[("accu_ingest_files", (("state", "ingested"),))] == figures["ingested"]
    assert m[("accu_ingest_files", (("state", "rejected"),))] == figures["rejected"]
    assert m[("accu_ingest_files", (("state", "queued"),))] == 0
    rejections = sum(v for (name, _), v in m.items() if name == "accu_ingest_rejections_total")
    assert rejections == figures["rejected"]
    assert m[("accu_ingest_latency_seconds_count", ())] == figures["ingested"]
    assert m[("accu_ingest_latency_seconds_bucket", (("le", "+Inf"),))] == figures["ingested"]
    assert abs(m[("accu_ingest_latency_seconds_sum", ())] - figures["latency_sum"]) < 0.01
    assert abs(m[("accu_ingest_last_success_timestamp_seconds", ())] - figures["last"]) < 0.01
    assert m[("accu_ingest_queue_depth", ())] == 0
    assert m[("accu_ingest_observer_alive", ())] == 1
    assert m[("accu_ingest_intake_candidates", ())] == 0
    assert m[("accu_ingest_intake_waiting", ())] == 0
    return m


def test_metrics_match_the_ledger_across_a_restart(worker: WorkerProcess, corpus: Path,
                                                   open_db) -> None:
    worker.start()
    shutil.copytree(corpus / "agilent-1290", worker.inbox / "agilent-1290")
    worker.wait_final(14, timeout=90)
    open_db(worker.data)
    before = check_against_ledger(worker)
    assert before[("accu_ingest_files", (("state", "ingested"),))] == 13
    # The lab's Excel workbook: no parser claims it.
    assert before[("accu_ingest_rejections_total", (("reason", "unrecognised_format"),))] == 1

    assert worker.stop() == 0
    worker.start()
    after = check_against_ledger(worker)
    for key in [k for k in before if k[0].startswith(("accu_ingest_files",
                                                      "accu_ingest_latency",
                                                      "accu_ingest_rejections"))]:
        assert after[key] == before[key], key


def test_reason_categories() -> None:
    assert reason_category("file is 600.0 MiB, over the 512 MiB limit (max_file_mb)",
                           None) == "too_large"
    assert reason_category("unrecognised format: zip archive; no parser", None) == \
        "unrecognised_format"
    assert reason_category("peak table ends without its Sum row (file cut off)", 9) == \
        "incomplete"
    assert reason_category("Area: expected a number, got 'abc'", 12) == "parse_error"
    assert reason_category("something else", None) == "other"


def test_canary_goes_through_the_pipeline_and_shows_in_status(tmp_path: Path, corpus: Path,
                                                              open_db) -> None:
    config = write_config(tmp_path, canary_seconds=1.0, canary_timeout_seconds=30.0)
    w = WorkerProcess(tmp_path, "--config", str(config))
    try:
        w.start()
        shutil.copy(corpus / "agilent-1290" / "25_Report.csv", w.inbox / "25_Report.csv")
        status = wait_for(lambda: (s := w.status())["canary"]["last_success"]
                          and s["canary"]["last_checked"] and s, timeout=60,
                          what="a canary checked")
        canary = status["canary"]
        assert canary["enabled"] and canary["problem"] is None
        assert canary["files"]["ingested"] >= 1
        code, ready = w.get("/readyz")
        assert code == 200 and ready["failed"] == {}

        status = w.wait_final(1)
        assert status["files"] == {"queued": 0, "processing": 0, "ingested": 1, "rejected": 0,
                                   "context": 0}
        m = scrape(w)
        assert m[("accu_ingest_files", (("state", "ingested"),))] == 1
        assert m[("accu_ingest_canary_ok", ())] == 1
        assert m[("accu_ingest_canary_last_success_timestamp_seconds", ())] > 0
        # Through the real path: ledger row, raw store, processed folder.
        open_db(w.data)
        rows = list(SourceFile.select().where(SourceFile.path.startswith(CANARY_DIR + "/")))
        assert rows and all(r.format.startswith("agilent-openlab") for r in rows
                            if r.state == INGESTED)
        assert list((w.data / "processed" / CANARY_DIR).glob("canary-*.csv"))
        assert health.counts()["ingested"] == 1

        exported = w.cli("export", "--what", "peaks")
        assert exported.returncode == 0, exported.stderr
        samples = {row["sample"] for row in csv.DictReader(io.StringIO(exported.stdout))}
        assert samples and not any(s.startswith("canary") for s in samples)
        shown = json.loads(w.cli("results", "--json").stdout)
        assert shown and {r["sample"] for r in shown if r["sample"]} == {"Std_25"}
        assert not any(r["job"] == CANARY_DIR for r in shown)
    finally:
        if w.proc is not None:
            w.stop()
