"""Instructions per file, counted by valgrind: the figures a shared machine's clock blurs.

On a shared VM the same commit's files/s moves from one hour to the next, and memory-heavy code
moves more than the rest, so a ratio of two clocks can swing past its target and back with no
change to either side. An instruction count does not move. Each figure is the difference of
two runs, each a fresh process under ``valgrind --tool=callgrind`` with ``PYTHONHASHSEED=0``
(start-up, imports and set-up count in both and cancel out), divided by the files the first
run did more:

- the parsers: ours (``parsers.parse``: sniffing, totals check, validation) and Accu-Mk1's
  (``parse_peakdata_csv`` with the UTF-8 decoding it needs) on fresh copies of 100_Report.csv,
  against none;
- the consumer's write transaction (``ingest.commit_chunk``: what it does under the database's
  one write lock, the limit of a burst on SQLite) for the burst's and the Report-only files:
  files taken into a database that holds others already ingested, ingested 256 to a task,
  against the same with the commit left out (the logging and disposal that follow it are left
  out of both).

Opt-in (``--only instructions``): it needs valgrind (``apt-get install valgrind``) and takes a
few minutes. Run as ``python -m tests.bench.instructions`` it is the child those runs start.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .table import Row
from .workload import CORPUS, REPO, REPORT_TEMPLATE, Workload

if TYPE_CHECKING:
    from .scenarios import Bench

SECTION = "Instructions per file (valgrind; the same on any day)"
TASK = 256  # files to an ingest task, as the watcher enqueues them (queue.BATCH)
_COLLECTED = re.compile(rb"Collected : (\d+)")


def instructions(bench: Bench) -> list[Row]:
    valgrind = shutil.which("valgrind")
    copies = bench.sizes.counted_parses
    base, counted = bench.sizes.counted_commits
    names = [f"ours, parsers.parse on {REPORT_TEMPLATE.name}",
             f"Accu-Mk1, parse_peakdata_csv on {REPORT_TEMPLATE.name}",
             "ours / Accu-Mk1 parser, by instructions",
             "write transaction (commit_chunk), burst files",
             "write transaction (commit_chunk), Report-only files"]
    if valgrind is None:
        why = "valgrind is not installed: apt-get install valgrind"
        return [Row(SECTION, name, None, "", note=why) for name in names]
    from . import peer

    module, peer_note = peer.load()
    ours = _per_file(valgrind, ["parse", "ours", str(copies)], ["parse", "ours", "0"], copies)
    theirs = None if module is None else _per_file(
        valgrind, ["parse", "peer", str(copies)], ["parse", "peer", "0"], copies)
    rows = [Row(SECTION, names[0], ours, "instr", note=f"{copies} fresh copies minus none"),
            Row(SECTION, names[1], theirs, "instr", note=peer_note),
            Row(SECTION, names[2], None if theirs is None else theirs / ours, "×",
                note="the goal is the clock's ratio (Parsers); this one does not move with "
                     "the machine")]
    for name, kind in ((names[3], "burst"), (names[4], "reports")):
        with tempfile.TemporaryDirectory(dir=bench.workdir) as folder:
            template = Path(folder) / "template"
            make_template(template, kind, base, counted)
            per_file = _per_file(valgrind, ["commit", str(template), "full"],
                                 ["commit", str(template), "skip"], counted)
        rows.append(Row(SECTION, name, per_file, "instr",
                        note=f"{counted} files into a database of {base:,}, {TASK} to a task"))
    return rows


def _per_file(valgrind: str, more: list[str], fewer: list[str], files: int) -> float:
    """The two runs side by side (each is one process, and a count is the same whatever runs
    beside it)."""
    runs = [_start(valgrind, args) for args in (more, fewer)]
    counted = [_counted(run, args) for run, args in zip(runs, (more, fewer), strict=True)]
    return (counted[0] - counted[1]) / files


def _start(valgrind: str, args: list[str]) -> subprocess.Popen[bytes]:
    """``python -m tests.bench.instructions ARGS`` under callgrind."""
    return subprocess.Popen(
        [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-m",
         "tests.bench.instructions", *args],
        cwd=REPO, env={**os.environ, "PYTHONHASHSEED": "0"}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)


def _counted(run: subprocess.Popen[bytes], args: list[str]) -> int:
    _, err = run.communicate()
    found = _COLLECTED.search(err)
    if run.returncode != 0 or found is None:
        raise RuntimeError(f"valgrind {' '.join(args)} failed ({run.returncode}): "
                           f"{err.decode(errors='replace')[-2000:]}")
    return int(found[1])


def make_template(folder: Path, kind: str, base: int, counted: int) -> None:
    """A worker's folders with ``base`` files ingested and ``counted`` more taken (queued),
    their ids in ``todo.txt``: what each counted run starts from, a copy each."""
    from tests.support.pipeline import Pipeline

    pipeline = Pipeline.open(folder)
    workload = Workload()
    exports = list(workload.reports(base + counted) if kind == "reports"
                   else workload.exports(base + counted))
    for export in exports:
        pipeline.drop(export.relpath, export.data)
    rows = []
    for i in range(0, len(exports), TASK):
        rows += pipeline.take(*(e.relpath for e in exports[i:i + TASK]))
    for i in range(0, base, TASK):
        pipeline.ingest(rows[i:min(i + TASK, base)])
    (folder / "todo.txt").write_text(" ".join(str(r.id) for r in rows[base:]))
    pipeline.close()


def _parse(which: str, copies: int) -> None:
    data = (CORPUS / REPORT_TEMPLATE).read_bytes()
    name = REPORT_TEMPLATE.name
    fresh = [bytes(bytearray(data)) for _ in range(copies)]
    if which == "ours":
        from worker import parsers

        parsers.parse(data, name)  # entry points and caches loaded in both runs
        for one in fresh:
            parsers.parse(one, name)
    else:
        from . import peer

        module, note = peer.load()
        if module is None:
            raise SystemExit(note)
        module.parse_peakdata_csv(name, data.decode("utf-8"))
        for one in fresh:
            module.parse_peakdata_csv(name, one.decode("utf-8"))


def _commit(template: Path, mode: str) -> None:
    from tests.support.pipeline import Pipeline
    from worker.consume import dispose, ingest
    from worker.record.models import SourceFile

    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "worker"
        shutil.copytree(template, copy)
        pipeline = Pipeline.open(copy)
        ids = [int(i) for i in (copy / "todo.txt").read_text().split()]
        # Logging each outcome and moving the files out of the inbox come after the
        # transaction: left out of both runs.
        dispose.dispose_rows = lambda settings, rows: {}  # type: ignore[assignment]
        ingest._log_outcome = lambda *args, **kwargs: None  # type: ignore[assignment]
        if mode == "skip":
            ingest.commit_chunk = lambda settings, works, owner: None  # type: ignore[assignment]
        for i in range(0, len(ids), TASK):
            ingest.process_many(pipeline.settings, ids[i:i + TASK], pipeline.owner)
        if mode == "full":
            done = (SourceFile.select().where(SourceFile.id.in_(ids),
                                              SourceFile.state == "ingested").count())
            if done != len(ids):
                raise SystemExit(f"{len(ids) - done} of {len(ids)} files not ingested")
        pipeline.close()


def main(argv: list[str]) -> None:
    if argv[0] == "parse":
        _parse(argv[1], int(argv[2]))
    elif argv[0] == "commit":
        _commit(Path(argv[1]), argv[2])
    else:
        raise SystemExit(f"unknown: {argv[0]} (parse ours|peer N, or commit TEMPLATE full|skip)")


if __name__ == "__main__":
    main(sys.argv[1:])
