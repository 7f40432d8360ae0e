"""A scaled-out installation on this machine, and its throughput on the benchmark's own burst.

The installation is support.cluster's ``Cluster`` (tests/e2e/test_scaleout.py builds on it too)
on a throw-away database and queue name from support.servers, with the embedded defaults'
timings (not the fault harness's), so its figure compares with the single-node burst of the
same run: the same staged sequence folders, renamed into the watchers' inboxes at once, timed
from the first drop to the last ``finished_at`` in the ledger.

    python tests/bench/scaleout.py --files 2000 --consumers 1 2 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, run as a script too

from support.cluster import Backends, Cluster
from support.servers import REDIS_SERVER, fresh_postgres, fresh_queue_name, unreachable

# The defaults of worker/settings.py, over the fault harness's shorter CONFIG.
DEFAULT_TIMINGS = {"stable_seconds": 1.0, "rescan_seconds": 30.0, "reconcile_seconds": 10.0,
                   "lease_seconds": 120.0}


@dataclass(frozen=True)
class Figures:
    files: int
    watchers: int
    consumers: int
    seconds: float  # first drop -> last commit
    rejected: int
    first_queued: float  # seconds from the first drop
    first_commit: float
    cpu_ms: float | None  # per file: the installation's processes
    watcher_cpu_ms: float | None  # per file: of that, the watchers'
    server_cpu_ms: float | None  # per file: PostgreSQL's backends serving the installation

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds


def burst(folders: list[Path], root: Path, watchers: int = 1, consumers: int = 2,
          workers: int = 1, queue: str = "redis", idle_seconds: float = 1.0,
          timeout: float = 600.0) -> Figures:
    """Rename the staged ``folders`` into the watchers' inboxes (in turn) at once; wait until
    every file is final. ``root`` must be on the staging folders' filesystem."""
    import psycopg

    n = sum(1 for f in folders for _ in f.iterdir())
    with fresh_postgres() as pg, fresh_queue_name() as name:
        backends = Backends(pg, REDIS_SERVER if queue == "redis" else pg, name)
        cluster = Cluster.build(root, backends, watchers, consumers, workers,
                                **DEFAULT_TIMINGS).start()
        try:
            time.sleep(idle_seconds)
            with psycopg.connect(pg, autocommit=True) as conn:
                ours_before, servers_before = _cpu(cluster), server_cpu(conn)
                watchers_pids = {node.pid for node in cluster.watchers}
                first = time.time()
                for i, folder in enumerate(folders):
                    os.rename(folder, cluster.watchers[i % watchers].inbox / folder.name)
                deadline = time.monotonic() + timeout
                while True:
                    final, rejected, last = conn.execute(
                        "SELECT count(*), count(*) FILTER (WHERE state = 'rejected'), "
                        "max(finished_at) FROM source_file "
                        "WHERE state IN ('ingested', 'rejected')").fetchone()
                    if final >= n:
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{final} of {n} files final after {timeout:.0f} s "
                                           f"(logs under {root})")
                    for node in cluster.nodes:
                        if not node.running():
                            raise RuntimeError(f"{node.role} {node.name} exited; see {node.log}")
                    time.sleep(0.2)
                ours_after, servers_after = _cpu(cluster), server_cpu(conn)
                queued, committed = conn.execute(
                    "SELECT (SELECT min(at) FROM audit_event WHERE event = 'queued'), "
                    "min(finished_at) FROM source_file").fetchone()
        finally:
            cluster.stop()
    def since(at: datetime | str) -> float:
        at = datetime.fromisoformat(at) if isinstance(at, str) else at
        return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp() - first

    return Figures(files=n, watchers=watchers, consumers=consumers, seconds=since(last),
                   rejected=rejected, first_queued=since(queued), first_commit=since(committed),
                   cpu_ms=_per_file(ours_before, ours_after, n),
                   watcher_cpu_ms=_per_file(ours_before, {
                       pid: s for pid, s in ours_after.items() if pid in watchers_pids}, n),
                   server_cpu_ms=_per_file(servers_before, servers_after, n))


def server_cpu(conn: Any) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving this run's database (the server
    may serve others too; a backend started meanwhile counts from zero)."""
    from bench.workerproc import cpu_seconds  # type: ignore[import-not-found]

    pids = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity "
                                       "WHERE datname = current_database()").fetchall()]
    return {pid: seconds for pid in pids if (seconds := cpu_seconds(pid)) is not None}


def _cpu(cluster: Cluster) -> dict[int, float]:
    from bench.workerproc import cpu_seconds  # type: ignore[import-not-found]

    found = {}
    for node in cluster.nodes:
        if node.pid is not None and (seconds := cpu_seconds(node.pid)) is not None:
            found[node.pid] = seconds
    return found


def _per_file(before: dict[int, float], after: dict[int, float], n: int) -> float | None:
    if not after:
        return None
    return sum(s - before.get(pid, 0.0) for pid, s in after.items()) * 1000.0 / n


def main(argv: list[str] | None = None) -> int:
    from bench.workload import Workload, write  # type: ignore[import-not-found]

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--watchers", type=int, default=1)
    parser.add_argument("--consumers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--workers", type=int, default=1, help="threads per consumer")
    parser.add_argument("--queue", choices=["redis", "postgresql"], default="redis")
    args = parser.parse_args(argv)
    reason = unreachable()
    if reason:
        print(f"cannot measure: {reason}", file=sys.stderr)
        return 2
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="accu-scaleout-") as tmp:
        for k, consumers in enumerate(args.consumers):
            staging = Path(tmp) / f"staging-{k}"
            exports = Workload().exports(args.files, 1 + k * 1000)
            folders = [staging / f for f in write(exports, staging)]
            figures = burst(folders, Path(tmp) / f"cluster-{k}", args.watchers, consumers,
                            args.workers, args.queue)
            out.append({"consumers": consumers, "watchers": args.watchers,
                        "files": figures.files, "seconds": round(figures.seconds, 2),
                        "files_per_s": round(figures.files_per_s, 1),
                        "first_queued": round(figures.first_queued, 2),
                        "first_commit": round(figures.first_commit, 2),
                        "cpu_ms_per_file": figures.cpu_ms and round(figures.cpu_ms, 2),
                        "watcher_cpu_ms_per_file": figures.watcher_cpu_ms
                        and round(figures.watcher_cpu_ms, 2),
                        "server_cpu_ms_per_file": figures.server_cpu_ms
                        and round(figures.server_cpu_ms, 2)})
            print(json.dumps(out[-1]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
