"""Kill the real worker at random moments while files arrive, then count what became of each file.

Runs ``python -m worker run`` as a subprocess on embedded defaults (SQLite database and queue in a
temporary data folder), drops a burst of generated OpenLab Report CSVs in waves — valid ones with
varied values, bad ones that must be rejected, and duplicate drops of identical bytes — SIGKILLs
the worker K times at random moments (dropping more files while it is down), restarts it, waits
until everything is final, and then checks DESIGN.md's invariants from the outside:

- every distinct content has one ledger row, in the state its content deserves, finalised once
  (one ``ingested`` or ``rejected`` audit event), with exactly one injection and exactly the
  generated peaks when ingested, and no rows at all when rejected;
- no orphan rows (peaks without injection, samples without injections, jobs without files),
  one current purity result per sample;
- ``accu-ingest audit verify`` passes; the raw store holds every content under its SHA-256;
- every dropped file is accounted for: the inbox is empty and processed/ plus quarantine/ hold
  exactly the dropped contents, each as often as it was dropped, rejected ones with a reason.

From the command line (the tally is printed; exit 1 when anything is lost or duplicated):

    python -m tests.faults.harness --files 1000 --kills 100 [--seed 7] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from support.drops import (
    CONFIG,
    Tally,
    check,
    inbox_files,
    plan,
    put,
)


# --- the worker -----------------------------------------------------------------------------
class Worker:
    """The real ``accu-ingest run`` in a subprocess, on ``root/inbox`` and ``root/data``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.inbox = root / "inbox"
        self.data = root / "data"
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.config = root / "accu-ingest.toml"
        self.config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in CONFIG.items()))
        self.log = root / "worker.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "worker", *args, "--inbox", str(self.inbox),
                "--data-dir", str(self.data), "--config", str(self.config)]

    def start(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([*self.command("run"), "--port", str(self.port)],
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}; see {self.log}")
            try:
                if self.get("/livez") is not None:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"worker did not come up in 30 s; see {self.log}")

    def get(self, path: str) -> dict | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return json.loads(r.read())

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=90)
        self.proc = None
        return code

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), capture_output=True, text=True, timeout=120)


def wait_quiet(worker: Worker, distinct: int, timeout: float) -> None:
    """Until every distinct content is final, the backlog is empty and the inbox too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = worker.get("/status") or {}
        except OSError:
            status = {}
        files = status.get("files", {})
        final = files.get("ingested", 0) + files.get("rejected", 0)
        if final >= distinct and status.get("backlog") == 0 and not inbox_files(worker.inbox):
            return
        time.sleep(0.25)
    raise TimeoutError(f"not quiet after {timeout:.0f} s: status {status}, "
                       f"{len(inbox_files(worker.inbox))} file(s) left in the inbox")


# --- the run --------------------------------------------------------------------------------
def run(files: int, kills: int, root: Path, seed: int = 1, max_gap: float = 2.5) -> Tally:
    """Drop ``files`` in waves, SIGKILL the worker ``kills`` times, then check everything."""
    rng = random.Random(seed)
    started = time.monotonic()
    drops = plan(files, rng, tag=str(seed))
    worker = Worker(root)
    waves = [drops[i::kills + 1] for i in range(kills + 1)]
    tally = Tally(files=len(drops), duplicates=sum(d.duplicate for d in drops))
    for wave in waves[:-1]:
        worker.start()
        up, down = wave[: len(wave) * 3 // 4], wave[len(wave) * 3 // 4:]
        for drop in up:
            put(worker.inbox, drop, rng)
        time.sleep(rng.uniform(0.05, max_gap))
        worker.kill()
        tally.kills += 1
        for drop in down:  # dropped while the worker is down: the start-up scan finds them
            put(worker.inbox, drop, rng)
    worker.start()
    for drop in waves[-1]:
        put(worker.inbox, drop, rng)
    distinct = len({d.sha for d in drops})
    try:
        wait_quiet(worker, distinct, timeout=60 + files * 0.5)
    finally:
        code = worker.kill(signal.SIGTERM)
    if code != 0:
        tally.problems.append(f"worker exited with {code} on SIGTERM")
    check(worker, drops, tally)
    tally.wall_s = time.monotonic() - started
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.harness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=60, help="files to drop (N)")
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs at random moments (K)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-gap", type=float, default=2.5,
                        help="longest run between a start and its kill, seconds")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it")
    args = parser.parse_args(argv)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        tally = run(args.files, args.kills, args.keep, args.seed, args.max_gap)
    else:
        with tempfile.TemporaryDirectory(prefix="accu-faults-") as tmp:
            tally = run(args.files, args.kills, Path(tmp), args.seed, args.max_gap)
    for problem in tally.problems[:50]:
        print("PROBLEM", problem)
    print(tally.line())
    return 1 if tally.problems or tally.lost or tally.duplicated else 0


if __name__ == "__main__":
    sys.exit(main())
