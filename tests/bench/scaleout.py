"""A scaled-out installation on this machine, and its throughput.

``Cluster`` runs N ``accu-ingest watch`` processes (each with its own inbox, data folder and node
name, as N instrument PCs would) and M ``accu-ingest consume`` processes (each with its own data
folder, so no folder is shared) against one PostgreSQL database and a Redis or PostgreSQL queue.
``fresh_postgres`` makes a throw-away database, ``fresh_queue_name`` a private Redis/Huey queue,
so runs never see each other's rows or tasks. ``tests/test_scaleout.py`` builds on these.

``measure`` is the benchmark: files dropped into the inboxes → all final, in files/s:

    python tests/bench/scaleout.py --files 300 --watchers 2 --consumers 3 --queue redis
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, run as a script too

from faults.harness import CONFIG, Drop, inbox_files, plan, put

PG_SERVER = os.environ.get("ACCU_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
REDIS_SERVER = os.environ.get("ACCU_TEST_REDIS", "redis://127.0.0.1:6379/0")
SECRET = "scale-out test secret"
AUDIT_KEY = "scale-out test audit key"  # every machine keys the one audit trail alike


def unreachable() -> str | None:
    """Why the PostgreSQL and Redis servers cannot be used here, or None when both answer."""
    import psycopg
    import redis
    try:
        psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=3).close()
    except Exception as exc:
        return f"PostgreSQL at {PG_SERVER} does not answer: {exc}"
    try:
        redis.Redis.from_url(REDIS_SERVER, socket_connect_timeout=3).ping()
    except Exception as exc:
        return f"Redis at {REDIS_SERVER} does not answer: {exc}"
    return None


@contextlib.contextmanager
def fresh_postgres(prefix: str = "accu_test") -> Iterator[str]:
    """A new, empty database for one run (dropped after); yields its URL."""
    import psycopg
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def fresh_queue_name(prefix: str = "accutest") -> Iterator[str]:
    """A queue name of its own (Huey keys ``huey.*.<name>`` in Redis); its keys go after."""
    import redis
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        client = redis.Redis.from_url(REDIS_SERVER)
        keys = list(client.scan_iter(match=f"huey.*{name}*"))
        if keys:
            client.delete(*keys)


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
        self.port = _free_port()
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


def measure(files: int = 300, watchers: int = 2, consumers: int = 3, workers: int = 2,
            queue: str = "redis", seed: int = 1) -> dict[str, Any]:
    """Drop ``files`` generated reports into the running installation; files/s until final."""
    rng = random.Random(seed)
    drops = plan(files, rng, tag=f"b{seed}")
    with (tempfile.TemporaryDirectory(prefix="accu-scaleout-") as tmp, fresh_postgres() as pg,
          fresh_queue_name() as name):
        backends = Backends(pg, REDIS_SERVER if queue == "redis" else pg, name)
        cluster = Cluster.build(Path(tmp), backends, watchers, consumers, workers).start()
        try:
            started = time.monotonic()
            for node, drop in spread(drops, cluster, rng):
                put(node.inbox, drop, rng)
            cluster.wait_quiet(len({d.sha for d in drops}), timeout=120 + files)
            seconds = time.monotonic() - started
        finally:
            cluster.stop()
    return {"files": files, "watchers": watchers, "consumers": consumers, "workers": workers,
            "queue": queue, "seconds": round(seconds, 2),
            "files_per_s": round(files / seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--watchers", type=int, default=2)
    parser.add_argument("--consumers", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="threads per consumer")
    parser.add_argument("--queue", choices=["redis", "postgresql"], default="redis")
    args = parser.parse_args(argv)
    reason = unreachable()
    if reason:
        print(f"cannot measure: {reason}", file=sys.stderr)
        return 2
    print(json.dumps(measure(args.files, args.watchers, args.consumers, args.workers,
                             args.queue)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
