"""Bursts of generated files — valid, bad, duplicate — and the count of what became of each.

``plan`` makes the drops, ``put`` puts one into an inbox as an instrument would, and the
``check_*`` functions compare the ledger, the raw store and the folders with what was dropped,
filling a ``Tally``. The fault harness, the scale-out tests and the benchmark share them.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from support.reports import GenPeak, random_peaks, report, total_of
from support.workers import wait_for

CONFIG = {"stable_seconds": 0.3, "rescan_seconds": 2.0, "reconcile_seconds": 1.0,
          "lease_seconds": 20.0}
BAD_KINDS = ("cut", "text_cell", "sum", "garbage", "zero_peaks")


class Checked(Protocol):
    """A worker under test as the checks see it: its folders and its command line."""

    inbox: Path
    data: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]: ...


@dataclass
class Drop:
    """One file put into the inbox: where, what bytes, and what must become of it."""

    path: str  # relative to the inbox
    data: bytes
    peaks: list[GenPeak] | None  # None: must be rejected
    duplicate: bool = False

    @property
    def sha(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Tally:
    files: int = 0
    distinct: int = 0
    ingested: int = 0
    rejected: int = 0
    duplicates: int = 0
    lost: int = 0
    duplicated: int = 0
    kills: int = 0
    wall_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"files={self.files} distinct={self.distinct} ingested={self.ingested} "
                f"rejected={self.rejected} duplicates={self.duplicates} lost={self.lost} "
                f"duplicated={self.duplicated} kills={self.kills} wall={self.wall_s:.1f}s "
                f"problems={len(self.problems)}")


# --- the files ------------------------------------------------------------------------------
def bad_file(rng: random.Random, kind: str, tag: str) -> bytes:
    """A file that must be rejected; ``tag`` makes its bytes unique."""
    peaks = random_peaks(rng)
    text = report(peaks, method=f"bad {tag}.amx")
    lines = text.split("\n")
    table = lines.index(",".join(["Height", "Area", "Area%", "Peak Begin Time", "Peak End Time",
                                  "RT [min]"]))
    if kind == "cut":  # cut off inside the table: no Sum row
        return "\n".join(lines[:table + 1 + max(1, len(peaks) // 2)]).encode()
    if kind == "text_cell":
        cells = lines[table + 1].split(",")
        cells[1] = "n.a."
        lines[table + 1] = ",".join(cells)
        return "\n".join(lines).encode()
    if kind == "sum":
        return report(peaks, method=f"bad {tag}.amx",
                      total=f"{float(total_of(peaks)) + 10:.4f}").encode()
    if kind == "garbage":
        return b"\x00\x01PK\x03\x04" + tag.encode() + rng.randbytes(300)
    return report([], method=f"bad {tag}.amx", total="0.0000").encode()


def plan(n: int, rng: random.Random, tag: str) -> list[Drop]:
    """N drops: about 10 % bad, 6 % duplicate copies, half of them in export folders."""
    drops: list[Drop] = []
    valid: list[Drop] = []
    for i in range(n):
        folder = f"run {i // 25:03d}/" if rng.random() < 0.5 else ""
        roll = rng.random()
        if roll < 0.06 and valid:
            original = rng.choice(valid)
            drops.append(Drop(f"{folder}copy {i:05d} of {Path(original.path).name}",
                              original.data, original.peaks, duplicate=True))
        elif roll < 0.16:
            kind = BAD_KINDS[i % len(BAD_KINDS)]
            name = f"{folder}X{tag}_{i:05d}_{kind}_Report.csv"
            drops.append(Drop(name, bad_file(rng, kind, f"{tag}-{i}"), None))
        else:
            peaks = random_peaks(rng)
            name = f"{folder}S{tag}_{i:05d}_Report.csv"
            text = report(peaks, method=f"method {tag}-{i}.amx")
            drops.append(Drop(name, text.encode("utf-8"), peaks))
            valid.append(drops[-1])
    return drops


def put(inbox: Path, drop: Drop, rng: random.Random) -> None:
    """Most files appear atomically (written under a hidden name, renamed); some are written
    in place in two parts, as a slow instrument would."""
    target = inbox / drop.path
    target.parent.mkdir(parents=True, exist_ok=True)
    if rng.random() < 0.8:
        tmp = target.with_name(f".{target.name}.part")
        tmp.write_bytes(drop.data)
        os.replace(tmp, target)
    else:
        half = len(drop.data) // 2
        with open(target, "wb") as fh:
            fh.write(drop.data[:half])
            fh.flush()
            time.sleep(0.05)
            fh.write(drop.data[half:])


def inbox_files(inbox: Path) -> list[Path]:
    """Files still waiting in the inbox (hidden temporaries excluded)."""
    return [p for p in inbox.rglob("*") if p.is_file() and not p.name.startswith(".")]



def check_rows(drops: list[Drop], tally: Tally) -> None:
    from peewee import JOIN, fn

    from worker.record.models import AuditEvent, Injection, Job, Peak, Result, Sample, SourceFile

    expected = {d.sha: d for d in drops if not d.duplicate}
    rows = {r.sha256: r for r in SourceFile.select()}
    finals = Counter((e.source_file_id, e.event) for e in AuditEvent.select().where(
        AuditEvent.event.in_(["ingested", "rejected"])))
    injections = Counter(i.source_file_id for i in Injection.select())
    tally.distinct = len(expected)
    for sha, drop in expected.items():
        row = rows.pop(sha, None)
        want = "ingested" if drop.peaks is not None else "rejected"
        if row is None or row.state not in ("ingested", "rejected"):
            tally.lost += 1
            tally.problems.append(f"lost: {drop.path} ({row.state if row else 'no ledger row'})")
            continue
        tally.ingested += row.state == "ingested"
        tally.rejected += row.state == "rejected"
        if row.state != want:
            tally.problems.append(f"{drop.path}: {row.state}, expected {want} ({row.error})")
            continue
        events = finals[(row.id, want)]
        other = finals[(row.id, "rejected" if want == "ingested" else "ingested")]
        if events != 1 or other:
            tally.duplicated += events > 1
            tally.problems.append(f"{drop.path}: {events} {want} event(s), {other} other")
        count = injections[row.id]
        if count != (1 if want == "ingested" else 0):
            tally.duplicated += count > 1
            tally.problems.append(f"{drop.path}: {count} injection(s)")
        if want == "ingested" and count == 1:
            got = [(p.height, p.area, p.area_pct, p.begin_min, p.end_min, p.rt_min)
                   for p in Peak.select().join(Injection).where(Injection.source_file == row.id)
                   .order_by(Peak.number)]
            if got != [(p.height, p.area, p.area_pct, p.begin, p.end, p.rt) for p in drop.peaks]:
                tally.problems.append(f"{drop.path}: stored peaks differ from the file's")
        if want == "rejected" and not row.error:
            tally.problems.append(f"{drop.path}: rejected without a reason")
    for sha, row in rows.items():
        tally.problems.append(f"unexpected ledger row {row.path} ({sha[:12]}…, {row.state})")

    orphans = {
        "peaks without injection": Peak.select().join(
            Injection, JOIN.LEFT_OUTER, on=(Peak.injection == Injection.id)).where(
            Injection.id.is_null()).count(),
        "samples without injections": Sample.select().join(
            Injection, JOIN.LEFT_OUTER).where(Injection.id.is_null()).count(),
        "jobs without files": Job.select().join(
            SourceFile, JOIN.LEFT_OUTER, on=(SourceFile.job == Job.id)).where(
            SourceFile.id.is_null()).count(),
    }
    for what, n in orphans.items():
        if n:
            tally.problems.append(f"{n} {what}")
    purity = (Result.select(Result.sample, fn.COUNT(Result.id).alias("n"))
              .where(Result.kind == "purity", Result.superseded == False)  # noqa: E712
              .group_by(Result.sample))
    per_sample = {r.sample_id: r.n for r in purity}
    for sample in Sample.select():
        if per_sample.get(sample.id, 0) != 1:
            tally.duplicated += per_sample.get(sample.id, 0) > 1
            tally.problems.append(f"sample {sample.sample_id}: "
                                  f"{per_sample.get(sample.id, 0)} current purity result(s)")
    # Whichever copy was registered first, every other drop of the same bytes is audited.
    seen_paths = {(e.sha256, json.loads(e.details).get("path")) for e in AuditEvent.select()
                  .where(AuditEvent.event == "duplicate")}
    seen_paths |= {(r.sha256, r.path) for r in SourceFile.select()}
    for drop in drops:
        if (drop.sha, drop.path) not in seen_paths:
            tally.problems.append(f"{drop.path}: neither registered nor audited as a duplicate")


def check_store(raw: Path, drops: list[Drop], tally: Tally) -> None:
    """Each content's record is where its ledger row says, read here without the worker's code:
    a header line ``accu-raw <sha256> <size>``, then the bytes."""
    from worker.record.models import SourceFile

    rows = {r.sha256: r for r in SourceFile.select()}
    for sha in {d.sha for d in drops}:
        row = rows.get(sha)
        data: bytes | None = None  # an empty content must be found too, not assumed
        if row is not None and row.raw_pack is not None and (raw / row.raw_pack).is_file():
            with open(raw / row.raw_pack, "rb") as fh:
                fh.seek(row.raw_offset)
                header = fh.readline().split()
                if header[:2] == [b"accu-raw", sha.encode()]:
                    data = fh.read(int(header[2]))
        if data is None or hashlib.sha256(data).hexdigest() != sha:
            tally.problems.append(f"raw store copy of {sha[:12]}… missing or damaged")


def check_folders(inbox: Path, data: Path, drops: list[Drop], tally: Tally) -> None:
    """Every dropped file is in processed/ or quarantine/ as often as it was dropped."""
    left = inbox_files(inbox)
    if left:
        tally.problems.append(f"{len(left)} file(s) left in the inbox: {left[:3]}")
    placed: Counter[str] = Counter()
    where: dict[str, set[str]] = {}
    for folder in ("processed", "quarantine"):
        for p in (data / folder).rglob("*"):
            if p.is_file() and not p.name.endswith(".reason.txt"):
                sha = hashlib.sha256(p.read_bytes()).hexdigest()
                placed[sha] += 1
                where.setdefault(sha, set()).add(folder)
                if folder == "quarantine" and not p.with_name(p.name + ".reason.txt").is_file():
                    tally.problems.append(f"{p} quarantined without a reason file")
    wanted = Counter(d.sha for d in drops)
    for sha, n in wanted.items():
        drop = next(d for d in drops if d.sha == sha)
        if placed[sha] < n:
            tally.lost += n - placed[sha]
            tally.problems.append(f"{drop.path}: dropped {n}x, found {placed[sha]}x on disk")
        elif placed[sha] > n:
            tally.duplicated += placed[sha] - n
            tally.problems.append(f"{drop.path}: dropped {n}x, found {placed[sha]}x on disk")
        home = "processed" if drop.peaks is not None else "quarantine"
        if where.get(sha, {home}) != {home}:
            tally.problems.append(f"{drop.path}: found in {sorted(where[sha])}, expected {home}")
    for sha in set(placed) - set(wanted):
        tally.problems.append(f"unknown file {sha[:12]}… in processed/ or quarantine/")


def check(worker: Checked, drops: list[Drop], tally: Tally) -> None:
    """Compare the database, the audit trail and the folders with what was dropped."""
    from worker.record import db
    from worker.settings import Settings

    database = db.open_database(Settings(inbox=worker.inbox, data_dir=worker.data))
    try:
        check_rows(drops, tally)
        check_store(worker.data / "raw", drops, tally)
    finally:
        database.close()
    verify = worker.cli("audit", "verify")
    if verify.returncode != 0:
        tally.problems.append(f"audit verify failed: {verify.stdout}{verify.stderr}")
    check_folders(worker.inbox, worker.data, drops, tally)


# --- a burst through one WorkerProcess ---------------------------------------------------
def drop_all(w: Checked, drops: list[Drop], rng: random.Random) -> None:
    for d in drops:
        put(w.inbox, d, rng)


def settle(w: Any, drops: list[Drop]) -> None:
    """Until every distinct content is final and the inbox is empty."""
    w.wait_final(len({d.sha for d in drops}), timeout=120)
    wait_for(lambda: not inbox_files(w.inbox), timeout=30, what="an empty inbox")


def assert_exactly_once(w: Checked, drops: list[Drop]) -> None:
    """The fault harness's checks: one ledger row and one final event per content, its rows
    exactly once, no orphans, audit chain intact, every drop in processed/ or quarantine/."""
    tally = Tally(files=len(drops), duplicates=sum(d.duplicate for d in drops))
    check(w, drops, tally)
    assert tally.problems == [], "\n".join(tally.problems[:30])
    assert (tally.lost, tally.duplicated) == (0, 0)
    assert tally.ingested + tally.rejected == tally.distinct == len({d.sha for d in drops})
