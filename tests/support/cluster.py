"""A scaled-out installation on this machine: N ``accu-ingest watch`` processes (each with its own
inbox, data folder and node name, as N instrument PCs would) and M ``accu-ingest consume``
processes (each with its own data folder, so no folder is shared) against one PostgreSQL database
and a Redis or PostgreSQL queue (support.servers makes both private to one test or run)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.drops import CONFIG, Drop, Tally, check_rows, inbox_files
from support.workers import files_under, free_port

SECRET = "scale-out test secret"
AUDIT_KEY = "scale-out test audit key"  # every machine keys the one audit trail alike


@dataclass
class Backends:
    """Where the shared state lives; handed to every process through ACCU_INGEST_* variables."""

    database_url: str
    queue_url: str
    queue_name: str
    secret: str = SECRET

    def env(self) -> dict[str, str]:
        return {**os.environ, "ACCU_INGEST_DATABASE_URL": self.database_url,
                "ACCU_INGEST_QUEUE_URL": self.queue_url,
                "ACCU_INGEST_QUEUE_NAME": self.queue_name,
                "ACCU_INGEST_QUEUE_SECRET": self.secret, "ACCU_INGEST_AUDIT_KEY": AUDIT_KEY,
                "PYTHONFAULTHANDLER": "1"}

    def settings(self, **extra: Any) -> Any:
        from worker.settings import Settings
        return Settings(database_url=self.database_url, queue_url=self.queue_url,
                        queue_name=self.queue_name, queue_secret=self.secret,
                        audit_key=AUDIT_KEY, **extra)


class Node:
    """One ``accu-ingest watch`` or ``consume`` process on its own folder under ``root``."""

    def __init__(self, root: Path, role: str, backends: Backends, name: str,
                 workers: int = 2, config: dict[str, Any] | None = None) -> None:
        self.root, self.role, self.backends, self.name = root, role, backends, name
        self.workers = workers
        self.inbox = root / "inbox"
        self.data = root / "data"
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.config = root / "accu-ingest.toml"
        self.config.write_text("".join(f"{k} = {json.dumps(v)}\n"
                                       for k, v in {**CONFIG, **(config or {})}.items()))
        self.log = root / f"{role}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "worker", self.role, "--data-dir", str(self.data),
               "--config", str(self.config), "--port", str(self.port)]
        if self.role == "watch":
            return [*cmd, "--inbox", str(self.inbox), "--node", self.name]
        return [*cmd, "--workers", str(self.workers)]

    def launch(self) -> None:
        """Start the process without waiting (see ``wait_up``)."""
        self.port = free_port()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         env=self.backends.env())

    def wait_up(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = self.proc.returncode if self.proc else None
                raise RuntimeError(f"{self.role} {self.name} exited with {code}:\n"
                                   f"{self.log.read_text(errors='replace')[-3000:]}")
            try:
                self.get("/livez")
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.role} {self.name} not up after {timeout} s; see {self.log}")

    def start(self) -> Node:
        self.launch()
        self.wait_up()
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return json.loads(r.read())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float = 60.0) -> int:
        """The exit code, once the process ends (a second SIGTERM would cut its shutdown short).

        A process that does not end in time is made to write its threads' stacks to its log
        (faulthandler, on SIGABRT) and the error shows them.
        """
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)
            self.proc.wait(timeout=30)
            self.proc = None
            raise RuntimeError(f"{self.role} {self.name} did not stop within {timeout:.0f} s:\n"
                               f"{self.log.read_text(errors='replace')[-6000:]}") from None
        self.proc = None
        return code


@dataclass
class Cluster:
    """Watchers and consumers of one installation, each in its own folder under ``root``."""

    root: Path
    backends: Backends
    watchers: list[Node] = field(default_factory=list)
    consumers: list[Node] = field(default_factory=list)

    @classmethod
    def build(cls, root: Path, backends: Backends, watchers: int = 2, consumers: int = 3,
              workers: int = 2, **config: Any) -> Cluster:
        cluster = cls(root, backends)
        cluster.watchers = [Node(root / f"pc{i + 1}", "watch", backends, f"pc{i + 1}",
                                 config=config) for i in range(watchers)]
        cluster.consumers = [Node(root / f"server-{i + 1}", "consume", backends,
                                  f"server-{i + 1}", workers=workers, config=config)
                             for i in range(consumers)]
        return cluster

    @property
    def nodes(self) -> list[Node]:
        return [*self.watchers, *self.consumers]

    def start(self) -> Cluster:
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.wait_up()
        return self

    def stop(self) -> dict[str, int]:
        """SIGTERM every running process; their exit codes by name."""
        codes = {}
        for node in self.nodes:
            if node.running() and node.proc is not None:
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes:
            if node.proc is not None:
                codes[f"{node.role} {node.name}"] = node.wait()
        return codes

    def kill_all(self) -> None:
        for node in self.nodes:
            if node.running():
                node.stop(signal.SIGKILL)

    def status(self) -> dict[str, Any]:
        """/status of any live process: the ledger's counts are the same for all."""
        for node in self.nodes:
            if node.running():
                with contextlib.suppress(OSError):
                    return node.get("/status")
        return {}

    def wait_quiet(self, distinct: int, timeout: float) -> dict[str, Any]:
        """Until ``distinct`` contents are final, nothing is in flight and every inbox is empty."""
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.status()
            files = status.get("files", {})
            final = files.get("ingested", 0) + files.get("rejected", 0)
            if (final >= distinct and status.get("backlog") == 0
                    and not any(inbox_files(w.inbox) for w in self.watchers)):
                return status
            time.sleep(0.2)
        left = sum(len(inbox_files(w.inbox)) for w in self.watchers)
        raise TimeoutError(f"not quiet after {timeout:.0f} s: status {status}, {left} file(s) "
                           "left in the inboxes")


def spread(drops: list[Drop], cluster: Cluster, rng: random.Random) -> list[tuple[Node, Drop]]:
    """Each drop assigned to one of the watchers' inboxes at random."""
    return [(rng.choice(cluster.watchers), drop) for drop in drops]


def cli(backends: Backends, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker", *args], capture_output=True,
                          text=True, env=backends.env(), timeout=120)


def bind(backends: Backends, tmp: Path) -> Any:
    """The shared database opened in the test process, to read what the processes wrote."""
    from worker.record import db
    return db.open_database(backends.settings(inbox=tmp / "none", data_dir=tmp / "none"))


def check_exactly_once(cluster: Cluster, placed: list[tuple[Node, Drop]], tmp: Path) -> Tally:
    """Every drop accounted for once: ledger, rows, audit events, blobs and folders."""
    from worker.record.models import RawBlob

    drops = [drop for _, drop in placed]
    tally = Tally(files=len(drops), duplicates=sum(d.duplicate for d in drops))
    database = bind(cluster.backends, tmp)
    try:
        check_rows(drops, tally)
        blobs = {b.sha256 for b in RawBlob.select(RawBlob.sha256)}
        for sha in {d.sha for d in drops} - blobs:
            tally.problems.append(f"raw bytes of {sha[:12]}… are not in the database")
    finally:
        database.close()
    # Every process checkpoints the trail's head in its own data folder (at start and stop).
    verify = cli(cluster.backends, "audit", "verify", "--data-dir", str(cluster.nodes[0].data))
    if verify.returncode != 0:
        tally.problems.append(f"audit verify failed: {verify.stdout}{verify.stderr}")
    for watcher in cluster.watchers:  # each file ends beside the inbox it was dropped into
        wanted = Counter(d.sha for node, d in placed if node is watcher)
        found: Counter[str] = Counter()
        for folder in ("processed", "quarantine"):
            for path in files_under(watcher.data / folder):
                if not path.name.endswith(".reason.txt"):
                    found[drop_sha(path)] += 1
        if found != wanted:
            lost, extra = wanted - found, found - wanted
            tally.lost += sum(lost.values())
            tally.duplicated += sum(extra.values())
            tally.problems.append(f"{watcher.name}: {sum(lost.values())} file(s) missing, "
                                  f"{sum(extra.values())} extra in processed/ + quarantine/")
        if inbox_files(watcher.inbox):
            tally.problems.append(f"{watcher.name}: files left in the inbox")
    for consumer in cluster.consumers:  # no shared folder: consumers hold no files' bytes
        for folder in ("raw", "processed", "quarantine"):
            if files_under(consumer.data / folder):
                tally.problems.append(f"{consumer.name} has files in {folder}/")
    return tally


def drop_sha(path: Path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_clean(tally: Tally) -> None:
    print(tally.line())
    assert tally.problems == [], "\n".join(tally.problems[:30])
    assert (tally.lost, tally.duplicated) == (0, 0)
    assert tally.ingested > 0 and tally.rejected > 0  # the burst had good and bad files


def scheduler_owner(backends: Backends, tmp: Path) -> str | None:
    from worker.record.models import Lease
    database = bind(backends, tmp)
    try:
        lease = Lease.get_or_none(Lease.name == "scheduler")
        return lease.owner if lease else None
    finally:
        database.close()


def owner_pid(owner: str | None) -> int | None:
    return int(owner.split(":")[1]) if owner else None
