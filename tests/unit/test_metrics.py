"""/metrics is Prometheus text read from the database at scrape time: it agrees with the ledger,
sorts rejections into their categories, counts events with counters that never go down, and
leaves canary files out of the file counts."""

from __future__ import annotations

import random

from prometheus_client.parser import text_string_to_metric_families
from support.pipeline import Pipeline
from support.reports import random_peaks, report

from worker.consume.queue import open_queue
from worker.record import ledger, migrations
from worker.record.canaries import CANARY_PREFIX
from worker.record.models import EventCount, database
from worker.runtime.health import Probe
from worker.runtime.metrics import reason_category, registry_for, render


def scrape(probe: Probe) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = render(registry_for(probe)).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_the_metrics_agree_with_the_ledger(pipeline: Pipeline) -> None:
    for i in range(3):
        pipeline.run(f"S-{i}_Report.csv", report(random_peaks(random.Random(i), 2)))
    pipeline.run("Cut_Report.csv", "\n".join(report(random_peaks(random.Random(9), 5))
                                              .split("\n")[:18]))
    pipeline.drop("Waiting_Report.csv", report(random_peaks(random.Random(10), 2)))
    pipeline.take("Waiting_Report.csv")
    queue = open_queue(pipeline.settings)
    queue.enqueue([1])

    got = scrape(Probe(pipeline.settings, queue=queue, observer_alive=lambda: True))
    assert got[("accu_ingest_files", (("state", "ingested"),))] == 3
    assert got[("accu_ingest_files", (("state", "rejected"),))] == 1
    assert got[("accu_ingest_files", (("state", "queued"),))] == 1
    assert got[("accu_ingest_backlog_files", ())] == 1
    assert got[("accu_ingest_queue_depth", ())] == 1
    assert got[("accu_ingest_observer_alive", ())] == 1
    assert got[("accu_ingest_latency_seconds_count", ())] == 3
    assert got[("accu_ingest_latency_seconds_bucket", (("le", "+Inf"),))] == 3
    assert sum(v for (name, _), v in got.items() if name == "accu_ingest_rejections_total") == 1
    assert got[("accu_ingest_last_success_timestamp_seconds", ())] > 0
    assert got[("accu_ingest_oldest_backlog_age_seconds", ())] >= 0


def test_canary_files_are_left_out_of_the_file_counts(pipeline: Pipeline) -> None:
    pipeline.run(CANARY_PREFIX + "S-1_Report.csv", report(random_peaks(random.Random(1), 2)))
    got = scrape(Probe(pipeline.settings))
    assert got[("accu_ingest_files", (("state", "ingested"),))] == 0
    assert got[("accu_ingest_latency_seconds_count", ())] == 0
    assert got[("accu_ingest_last_success_timestamp_seconds", ())] == 0


def test_counters_never_go_down_when_a_rejection_is_retried(pipeline: Pipeline) -> None:
    """The rejections counter was the number of rows in state rejected: a retry lowered it,
    which Prometheus reads as a counter reset and rate() as a burst of rejections."""
    row = pipeline.run("Cut_Report.csv", "\n".join(report(random_peaks(random.Random(9), 5))
                                                     .split("\n")[:18]))
    assert row.state == "rejected"
    before = scrape(Probe(pipeline.settings))
    assert before[("accu_ingest_files_outcome_total",
                   (("format", "unknown"), ("outcome", "rejected")))] == 1
    assert ledger.reopen(row, "operator", pipeline.settings.lease_seconds)
    after = scrape(Probe(pipeline.settings))
    assert after[("accu_ingest_files", (("state", "rejected"),))] == 0
    assert sum(v for (name, _), v in after.items()
               if name == "accu_ingest_rejections_total") == 1
    assert after[("accu_ingest_retries_total", ())] == 1


def test_duplicates_bytes_and_formats_are_counted(pipeline: Pipeline) -> None:
    data = report(random_peaks(random.Random(3), 2))
    row = pipeline.run("A/S-1_Report.csv", data)
    pipeline.drop("B/S-1_Report.csv", data)
    pipeline.take("B/S-1_Report.csv")
    got = scrape(Probe(pipeline.settings))
    assert got[("accu_ingest_duplicates_total", ())] == 1
    assert got[("accu_ingest_stored_bytes_total", ())] == row.size
    assert got[("accu_ingest_files_outcome_total",
                (("format", row.format), ("outcome", "ingested")))] == 1


def test_an_upgraded_database_starts_its_counters_from_the_ledger(pipeline: Pipeline) -> None:
    pipeline.run("S-1_Report.csv", report(random_peaks(random.Random(1), 2)))
    EventCount.delete().execute()
    with database.atomic():
        next(step for n, _, step in migrations.MIGRATIONS if n == 11)(database)
    got = scrape(Probe(pipeline.settings))
    assert sum(v for (name, labels), v in got.items()
               if name == "accu_ingest_files_outcome_total") == 1


def test_an_empty_ledger_scrapes_as_zeros_not_missing_series(pipeline: Pipeline) -> None:
    got = scrape(Probe(pipeline.settings))
    assert got[("accu_ingest_files", (("state", "ingested"),))] == 0
    assert got[("accu_ingest_rejections_total", (("reason", "other"),))] == 0
    assert got[("accu_ingest_latency_seconds_count", ())] == 0
    assert got[("accu_ingest_backlog_files", ())] == 0


def test_rejection_reasons_fall_into_few_stable_categories() -> None:
    assert reason_category("file is 12.0 MB, larger than max_file_mb = 1", None) == "too_large"
    assert reason_category("unrecognised format: no parser claims it", None) \
        == "unrecognised_format"
    assert reason_category("the table is cut off before its Sum row", 18) == "incomplete"
    assert reason_category("gave up after 5 attempts", None) == "too_many_attempts"
    assert reason_category("Area: expected a number, got 'n.a.'", 16) == "parse_error"
    assert reason_category("something else", None) == "other"
