"""A file's path in one process: taken from the inbox, registered, ingested into rows — or
rejected with its line and reason — all or nothing, and once however often its task runs."""

from __future__ import annotations

import json
import random
from pathlib import Path

from support.corpus import corpus_bytes
from support.pipeline import Pipeline
from support.reports import random_peaks, report

from worker.consume import ingest
from worker.record import audit, digest, ledger
from worker.record.models import AuditEvent, Injection, Job, Peak, SourceFile


def events(row: SourceFile, name: str) -> int:
    return AuditEvent.select().where(AuditEvent.source_file_id == row.id,
                                     AuditEvent.event == name).count()


def test_a_report_becomes_its_rows_and_leaves_the_inbox_for_processed(
        pipeline: Pipeline) -> None:
    peaks = random_peaks(random.Random(7), 5)
    row = pipeline.run("S-1_Inj_1_Report.csv", report(peaks))

    assert row.state == "ingested" and row.error is None
    [injection] = Injection.select().where(Injection.source_file == row.id)
    stored = [(p.rt_min, p.area, p.area_pct, p.height, p.begin_min, p.end_min)
              for p in injection.peaks.order_by(Peak.number)]
    assert stored == [(p.rt, p.area, p.area_pct, p.height, p.begin, p.end) for p in peaks]
    assert not (pipeline.settings.inbox / "S-1_Inj_1_Report.csv").exists()
    assert (pipeline.settings.processed_dir / "S-1_Inj_1_Report.csv").is_file()
    assert events(row, "ingested") == 1 and audit.verify().ok


def test_a_real_agilent_export_is_ingested(pipeline: Pipeline) -> None:
    row = pipeline.run("100_Report.csv", corpus_bytes("agilent-1290", "100_Report.csv"))
    assert row.state == "ingested"
    assert Peak.select().join(Injection).where(Injection.source_file == row.id).count() > 0


def test_a_report_cut_in_its_table_is_rejected_with_its_line_and_no_rows(
        pipeline: Pipeline) -> None:
    text = report(random_peaks(random.Random(3), 6))
    cut = "\n".join(text.split("\n")[:18])  # header on line 16, two peak rows, no Sum
    row = pipeline.run("Cut_Report.csv", cut)

    assert row.state == "rejected"
    assert row.error and row.error_line is not None
    assert Injection.select().where(Injection.source_file == row.id).count() == 0
    quarantined = pipeline.settings.quarantine_dir / "Cut_Report.csv"
    assert quarantined.read_bytes() == cut.encode()
    assert row.error in (quarantined.parent / "Cut_Report.csv.reason.txt").read_text()
    assert events(row, "rejected") == 1 and audit.verify().ok


def test_the_same_task_twice_writes_the_rows_once(pipeline: Pipeline) -> None:
    """A task delivered again (a reconciler's re-enqueue racing the first run) is a no-op."""
    pipeline.drop("S-2_Inj_1_Report.csv", report(random_peaks(random.Random(5), 3)))
    [row] = pipeline.take("S-2_Inj_1_Report.csv")

    assert pipeline.ingest([row]) == {row.id: "ingested"}
    assert pipeline.ingest([row]) == {}  # final already: not claimed again
    assert Injection.select().where(Injection.source_file == row.id).count() == 1
    assert Peak.select().count() == 3
    assert events(row, "ingested") == 1


def test_the_same_bytes_under_another_name_are_one_ledger_row(pipeline: Pipeline) -> None:
    data = report(random_peaks(random.Random(11), 2))
    first = pipeline.run("A_Report.csv", data)
    pipeline.drop("copy of A_Report.csv", data)
    [again] = pipeline.take("copy of A_Report.csv")

    assert again.id == first.id
    assert SourceFile.select().count() == 1 and Injection.select().count() == 1
    assert not (pipeline.settings.inbox / "copy of A_Report.csv").exists()
    assert AuditEvent.select().where(AuditEvent.event == "duplicate").count() == 1


def test_a_batch_is_taken_and_ingested_together(tmp_path: Path) -> None:
    pipeline = Pipeline.open(tmp_path)
    try:
        names = [f"S-{i}_Inj_1_Report.csv" for i in range(20)]
        for i, name in enumerate(names):
            pipeline.drop(name, report(random_peaks(random.Random(i))))
        rows = pipeline.take(*names)
        assert set(pipeline.ingest(rows).values()) == {"ingested"}
        assert Injection.select().count() == 20
        assert not any(pipeline.settings.inbox.iterdir())
    finally:
        pipeline.close()


def test_a_set_file_backing_off_mid_chunk_leaves_no_rows_and_spares_the_chunk(
        tmp_path: Path, corpus: Path) -> None:
    """A chunk is written without a savepoint per file. Its ``.D`` CSV set file, parsed before
    the folder's Report.TXT was ingested by another consumer, finds that injection when its
    rows are written, and must back off: it leaves no rows, and the rest of the chunk is
    ingested all the same (written again, a savepoint per file)."""
    pipeline = Pipeline.open(tmp_path, group_settle_seconds=0)
    try:
        source = corpus / "agilent-chemstation" / "001F0101.D"
        members = ["REPORT01.CSV", "REPORT02.CSV", "Report00.CSV"]
        for name in members:
            pipeline.drop(f"seq/001F0101.D/{name}", (source / name).read_bytes())
        loose = [f"S-{i}_Inj_1_Report.csv" for i in range(3)]
        for i, name in enumerate(loose):
            pipeline.drop(f"seq/{name}", report(random_peaks(random.Random(i))))
        rows = pipeline.take(*[f"seq/001F0101.D/{n}" for n in members],
                             *[f"seq/{n}" for n in loose])
        claimed = ledger.claim_many([r.id for r in rows], pipeline.owner, 60)
        works = [ingest._prepare(pipeline.settings, row, {}) for row in claimed]
        header = next(w for w in works if w.row.name == "Report00.CSV")
        assert header.parsed is not None and header.wait is None  # read as a set, for now

        txt = pipeline.run("seq/001F0101.D/Report.TXT", (source / "Report.TXT").read_bytes())
        assert txt.state == "ingested"
        todo = [w for w in works if w.wait is None and w.failure is None]
        ingest.commit_chunk(pipeline.settings, todo, pipeline.owner)

        assert header.wait is not None and header.state is None
        assert Injection.select().where(Injection.source_file == header.row.id).count() == 0
        assert {w.row.name: w.state for w in todo if w.row.name in loose} == \
            dict.fromkeys(loose, "ingested")
        assert [i.source_file.name for i in Injection.select().where(
            Injection.superseded == False)  # noqa: E712
            if "001F0101.D" in i.source_file.path] == ["Report.TXT"]
        assert audit.verify().ok
    finally:
        pipeline.close()


def test_two_revisions_of_a_path_in_one_chunk_leave_the_newer_one_current(
        tmp_path: Path) -> None:
    """Rows of a chunk are written together at its end; a revision must still find the
    injection of the revision before it when that one is in the same chunk."""
    pipeline = Pipeline.open(tmp_path)
    try:
        others = [f"S-{i}_Inj_1_Report.csv" for i in range(3)]
        for i, name in enumerate(others):
            pipeline.drop(name, report(random_peaks(random.Random(i))))
        pipeline.drop("R-1_Inj_1_Report.csv", report(random_peaks(random.Random(10))))
        first = pipeline.take("R-1_Inj_1_Report.csv", *others)
        pipeline.drop("R-1_Inj_1_Report.csv", report(random_peaks(random.Random(11))))
        [second] = pipeline.take("R-1_Inj_1_Report.csv")
        assert second.previous_id == first[0].id

        assert set(pipeline.ingest([*first, second]).values()) == {"ingested"}
        current = Injection.select().where(Injection.superseded == False)  # noqa: E712
        assert sorted(i.source_file_id for i in current) == sorted(
            [second.id, *(r.id for r in first[1:])])
        assert Injection.get(Injection.source_file == first[0].id).superseded
        assert audit.verify().ok
    finally:
        pipeline.close()


def test_each_file_of_a_chunk_carries_the_digest_of_its_own_rows(
        tmp_path: Path, corpus: Path) -> None:
    """A chunk writes its rows at its end, after its files were marked ingested: each file's
    ``ingested`` event must still carry the digest of the rows it produced (its injection,
    peaks and trace), not of none, and ``audit verify --rows`` must find them intact."""
    pipeline = Pipeline.open(tmp_path)
    try:
        traces = corpus / "agilent-1290" / "20260113 153049"
        names = [f"seq/{p.name}" for p in sorted(traces.iterdir())[:3]]
        for path, name in zip(sorted(traces.iterdir())[:3], names, strict=True):
            pipeline.drop(name, path.read_bytes())
        loose = [f"seq/S-{i}_Inj_1_Report.csv" for i in range(3)]
        for i, name in enumerate(loose):
            pipeline.drop(name, report(random_peaks(random.Random(i))))
        rows = pipeline.take(*names, *loose)
        assert set(pipeline.ingest(rows).values()) == {"ingested"}

        nothing = digest.files_rows([-1])[-1]
        recorded = {e.source_file_id: json.loads(e.details)["rows"] for e in AuditEvent.select()
                    .where(AuditEvent.event == "ingested")}
        assert sorted(recorded) == sorted(r.id for r in rows)
        assert recorded == {r.id: digest.file_rows(r.id) for r in rows}
        assert nothing not in recorded.values()
        assert digest.files_rows([r.id for r in rows]) == recorded
        assert digest.verify_rows().ok
    finally:
        pipeline.close()


def test_each_computed_event_carries_the_digest_of_the_results_as_stored(
        tmp_path: Path) -> None:
    """A recompute digests the result rows it wrote from the values it bound, not by reading
    them back: every ``computed`` event must still match the rows as the database holds them,
    also for a second chunk whose recompute supersedes the first one's results."""
    _computed_digests_match_the_stored_results(Pipeline.open(tmp_path))


def test_computed_digests_match_the_stored_results_on_postgresql(tmp_path: Path,
                                                                  pg: str) -> None:
    """The same on PostgreSQL, which hands times and doubles back as its own types."""
    _computed_digests_match_the_stored_results(Pipeline.open(tmp_path, database_url=pg))


def _computed_digests_match_the_stored_results(pipeline: Pipeline) -> None:
    try:
        for chunk in range(2):
            names = [f"lot/S-{i % 2}_Inj_{chunk * 3 + i}_Report.csv" for i in range(3)]
            for i, name in enumerate(names):
                pipeline.drop(name, report(random_peaks(random.Random(chunk * 10 + i))))
            assert set(pipeline.ingest(pipeline.take(*names)).values()) == {"ingested"}

        computed = [json.loads(e.details) for e in AuditEvent.select()
                    .where(AuditEvent.event == "computed").order_by(AuditEvent.seq)]
        assert computed
        assert AuditEvent.select().where(AuditEvent.event == "superseded").exists()
        for details in computed:
            ids = [r["result"] for r in details["results"]]
            assert details["rows"] == digest.result_rows(ids)
        assert digest.verify_rows().ok
    finally:
        pipeline.close()


def test_loose_files_of_one_chunk_share_one_job(tmp_path: Path) -> None:
    """Loose files dropped together are one job. A chunk writes its files' final states (which
    name their job) at its end, so the second file cannot learn the first one's job from the
    ledger; it must still join it, as must a file of the next chunk."""
    pipeline = Pipeline.open(tmp_path)
    try:
        names = [f"S-{i}_Inj_1_Report.csv" for i in range(4)]
        for i, name in enumerate(names):
            pipeline.drop(name, report(random_peaks(random.Random(i))))
        assert set(pipeline.ingest(pipeline.take(*names[:3])).values()) == {"ingested"}
        assert set(pipeline.ingest(pipeline.take(names[3])).values()) == {"ingested"}
        assert Job.select().count() == 1
        assert {r.job_id for r in SourceFile.select()} == {Job.get().id}
    finally:
        pipeline.close()
