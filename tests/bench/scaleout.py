"""A scaled-out installation on this machine, and its throughput.

The installation is support.cluster's ``Cluster`` (tests/e2e/test_scaleout.py builds on it too)
on a throw-away database and queue name from support.servers.

``measure`` is the benchmark: files dropped into the inboxes → all final, in files/s:

    python tests/bench/scaleout.py --files 300 --watchers 2 --consumers 3 --queue redis
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, run as a script too

from support.cluster import Backends, Cluster, spread
from support.drops import plan, put
from support.servers import REDIS_SERVER, fresh_postgres, fresh_queue_name, unreachable


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
