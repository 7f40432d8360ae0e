"""The background scrub makes way for ingest, on a real SQLite installation with real files: a
pass re-hashes nothing while files wait to be ingested, reads on once they are, and does not
wait longer than ``scrub_backlog_wait_seconds`` for a backlog that never clears."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support.pipeline import Pipeline
from support.reports import random_peaks, report

from worker.record import ledger
from worker.record.canaries import CANARY_PREFIX
from worker.record.rawcheck import Pace
from worker.runtime import scrub as scrub_module
from worker.runtime.scrub import Scrub, backlog, facts

INGESTED = 3


@pytest.fixture
def installation(tmp_path: Any) -> Iterator[Pipeline]:
    """Files already ingested (the raw store the scrub re-hashes), and no backlog yet."""
    p = Pipeline.open(tmp_path, scrub_seconds=1.0, scrub_mb_per_second=1000.0,
                      scrub_backlog_wait_seconds=60.0)
    for n in range(INGESTED):
        assert p.run(f"S{n}_Report.csv", report(random_peaks(random.Random(n), 3))).state \
            == "ingested"
    yield p
    p.close()


def queued(p: Pipeline, name: str = "Later_Report.csv") -> Any:
    p.drop(name, report(random_peaks(random.Random(name), 2)))
    [row] = p.take(name)
    return row


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if found := check():
            return found
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {timeout} s")


def test_a_pass_waits_while_files_wait_to_be_ingested_then_checks_them_all(
        installation: Pipeline) -> None:
    later = queued(installation)
    scrub = Scrub(installation.settings, lambda: True)
    scrub.start()
    try:
        wait_for(lambda: facts(scrub, installation.settings)["waiting_for_ingest"], 10,
                 "pause for the backlog")
        time.sleep(2.5)  # more than one re-ask: still waiting, nothing read
        shown = facts(scrub, installation.settings)
        assert shown["running"] and shown["waiting_for_ingest"]
        assert shown["last_pass"] is None
        assert scrub.pace is not None and scrub.pace.done == 0

        assert installation.ingest([later]) == {later.id: "ingested"}
        done = wait_for(lambda: (s := facts(scrub, installation.settings))["last_pass"] and s,
                        10, "pass once the backlog cleared")
        assert done["checked_files"] == INGESTED + 1
        assert done["problems"] == 0
    finally:
        scrub.stop()


def test_a_backlog_that_never_clears_holds_a_pass_back_only_so_long(
        installation: Pipeline, caplog: pytest.LogCaptureFixture) -> None:
    queued(installation)
    settings = installation.settings.model_copy(update={"scrub_backlog_wait_seconds": 1.5})
    scrub = Scrub(settings, lambda: True)
    caplog.set_level(logging.INFO, logger="worker.runtime.scrub")
    began = time.monotonic()
    found = scrub.run_pass()
    took = time.monotonic() - began
    assert 1.5 <= took < 6
    assert found.checked == INGESTED + 1 and found.ok
    assert facts(scrub, settings)["checked_files"] == INGESTED + 1
    assert facts(scrub, settings)["last_pass"] is not None
    [summary] = [r for r in caplog.records if hasattr(r, "scrub_paused_s")]
    assert 1.5 <= summary.scrub_paused_s < 6
    assert "for ingest's backlog" in summary.getMessage()


def test_a_pass_stopped_while_it_waits_is_not_a_pass(installation: Pipeline) -> None:
    queued(installation)
    scrub = Scrub(installation.settings, lambda: True)
    scrub.start()
    wait_for(lambda: facts(scrub, installation.settings)["waiting_for_ingest"], 10,
             "pause for the backlog")
    began = time.monotonic()
    scrub.stop()
    assert time.monotonic() - began < 3
    shown = facts(scrub, installation.settings)
    assert shown["last_pass"] is None and not shown["running"]
    assert scrub_module.read().get(scrub_module.LAST_PASS) is None


def test_no_wait_setting_keeps_the_old_pass(installation: Pipeline) -> None:
    queued(installation)
    settings = installation.settings.model_copy(update={"scrub_backlog_wait_seconds": 0.0})
    began = time.monotonic()
    assert Scrub(settings, lambda: True).run_pass().checked == INGESTED + 1
    assert time.monotonic() - began < 1


def test_what_counts_as_a_backlog(installation: Pipeline) -> None:
    counts_as_a_backlog(installation)


def test_what_counts_as_a_backlog_on_postgresql(tmp_path: Any, pg: str) -> None:
    p = Pipeline.open(tmp_path, database_url=pg)
    try:
        assert p.run("S0_Report.csv", report(random_peaks(random.Random(0), 3))).state \
            == "ingested"
        counts_as_a_backlog(p)
    finally:
        p.close()


def counts_as_a_backlog(p: Pipeline) -> None:
    assert not backlog()  # every file final
    row = queued(p)
    assert backlog()  # registered, its task on the queue
    (claimed,) = ledger.claim_many([row.id], p.owner, 60)
    assert backlog()  # being parsed
    ledger.release(claimed, p.owner, retry_in=3600)
    assert not backlog()  # given back to be tried in an hour: nobody is working on it
    canary = queued(p, CANARY_PREFIX + "c1_Report.csv")
    assert canary.path.startswith(CANARY_PREFIX)
    assert not backlog()  # the health canary alone is no backlog


def test_pace_asks_at_most_once_a_second_and_does_not_catch_up_after_a_pause() -> None:
    asked: list[float] = []
    clears = time.monotonic() + 1.0

    def busy() -> bool:
        asked.append(time.monotonic())
        return asked[-1] < clears

    pace = Pace(1000.0, busy=busy, max_pause=30.0)
    assert pace(0)
    assert pace.paused >= 0.9 and not pace.pausing
    began = time.monotonic()
    for _ in range(100):  # 500 bytes at 1000 bytes/s, after a pause of a second
        assert pace(5)
    assert time.monotonic() - began >= 0.45
    assert len(asked) <= 3
