"""A worker loads no database or queue client library its settings do not use (drivers.py).

peewee imports psycopg and Huey imports redis whenever they are installed; on embedded defaults
that was ~15 MB of resident memory in each of ``run``'s three processes for nothing. Where the
URLs name PostgreSQL or Redis, their libraries must still load.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.corpus import REPO, corpus_dir
from support.workers import WorkerProcess, write_config

LEFT_OUT = ("psycopg", "psycopg2", "psycopg2cffi", "redis")
SCALEOUT_INSTALLED = all(importlib.util.find_spec(n) for n in ("psycopg", "redis"))
needs_scaleout = pytest.mark.skipif(
    not SCALEOUT_INSTALLED, reason="psycopg and redis are not installed, so there is nothing to "
                                   "leave out or keep (pip install -e '.[scaleout]')")


Worker = tuple[WorkerProcess, list[int]]  # and its processes' pids, its own first


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """``run`` on embedded defaults with two consumer processes, after one file went through.

    PYTHONVERBOSE makes every Python process of the worker (its children inherit the variable
    and its stderr) write each module it loads to the worker's log: ``import 'name' # loader``
    once the module has run, and never for an import that failed.
    """
    root = tmp_path_factory.mktemp("embedded")
    w = WorkerProcess(root, "--config", str(write_config(root, consumer_processes=2)),
                      env={"PYTHONVERBOSE": "1"})
    w.start()
    try:
        shutil.copy(corpus_dir() / "agilent-1290" / "25_Report.csv", w.inbox)
        w.wait_final(1)  # so the consumers' parse-and-write path has run too
        assert w.proc is not None
        yield w, [w.proc.pid, *w.status()["consumer_processes"]["pids"]]
    finally:
        if w.proc is not None and w.proc.poll() is None:
            w.stop(signal.SIGKILL)


def imports(log: Path) -> Counter[str]:
    """How many processes writing to ``log`` loaded each module (a process loads it once)."""
    return Counter(m.group(1) for m in re.finditer(r"^import '([\w.]+)' # ",
                                                    log.read_text(errors="replace"), re.M))


@needs_scaleout
def test_no_process_of_a_worker_on_embedded_defaults_imports_psycopg_or_redis(
        embedded: Worker) -> None:
    w, pids = embedded
    imported = imports(w.log)
    assert imported["peewee"] == imported["huey"] == len(pids) == 3  # all three are in the log
    loaded = {name for name in imported if name.split(".")[0] in LEFT_OUT}
    assert loaded == set()


def test_only_the_parent_loads_the_views_and_deliveries(embedded: Worker) -> None:
    """A consumer child serves no page and sends nothing: the templates and the status
    endpoint are the parent's, and holding them cost each consumer memory for nothing."""
    w, pids = embedded
    imported = imports(w.log)
    assert imported["huey"] == len(pids) == 3
    for name in ("jinja2", "worker.web.app", "worker.runtime.http", "worker.deliver.runner"):
        assert imported[name] == 1, name


@needs_scaleout
def test_no_process_of_a_worker_on_embedded_defaults_maps_a_postgresql_client_library(
        embedded: Worker) -> None:
    """The memory a user sees: psycopg's compiled parts and libpq are mapped by no process.
    (redis is pure Python: it leaves no trace in the maps; the import log shows it.)"""
    _, pids = embedded
    if not Path(f"/proc/{pids[0]}/maps").exists():
        pytest.skip("no /proc/<pid>/maps on this platform to read the processes' mappings")
    for pid in pids:
        maps = Path(f"/proc/{pid}/maps").read_text()
        libraries = {line.split()[-1] for line in maps.splitlines() if "/" in line}
        assert not [lib for lib in libraries if "psycopg" in lib or "libpq" in lib], pid


GUARD = """
import importlib, json, sys
from worker.runtime import drivers
from worker.settings import Settings

settings = Settings(**json.loads(sys.argv[1]))
if sys.argv[2] == "late":
    import peewee
left_out = drivers.leave_out_unused(settings)
import huey, peewee  # both still import, with the drivers left out or not

def importable(name):
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True

print(json.dumps({"left_out": list(left_out), "psycopg": importable("psycopg"),
                  "redis": importable("redis")}))
"""


def guarded(settings: dict[str, str], when: str = "first") -> dict[str, object]:
    """leave_out_unused in a fresh interpreter (this one's modules stay as they are)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCU_INGEST_")}
    done = subprocess.run([sys.executable, "-c", GUARD, json.dumps(settings), when], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


PG = "postgresql://accu@127.0.0.1:5432/accu"
REDIS = "redis://127.0.0.1:6379/0"


@needs_scaleout
@pytest.mark.parametrize(("settings", "kept"), [
    ({}, set()),
    ({"database_url": "sqlite:///elsewhere.db", "queue_url": "sqlite:///q.db"}, set()),
    ({"database_url": PG}, {"psycopg"}),
    ({"database_url": "postgres://accu@127.0.0.1/accu"}, {"psycopg"}),
    ({"queue_url": PG}, {"psycopg"}),  # Huey's PostgreSQL storage
    ({"queue_url": REDIS}, {"redis"}),
    ({"queue_url": "rediss://127.0.0.1:6380/0"}, {"redis"}),
    ({"database_url": PG, "queue_url": REDIS}, {"psycopg", "redis"}),
])
def test_the_guard_leaves_out_only_what_the_urls_do_not_need(
        settings: dict[str, str], kept: set[str]) -> None:
    seen = guarded(settings)
    assert {name for name in ("psycopg", "redis") if seen[name]} == kept
    postgresql = {"psycopg", "psycopg2", "psycopg2cffi"}
    assert set(seen["left_out"]) == (  # type: ignore[arg-type]
        (set() if "psycopg" in kept else postgresql) | (set() if "redis" in kept else {"redis"}))


@needs_scaleout
def test_the_guard_does_nothing_once_peewee_is_imported() -> None:
    """Too late: peewee holds psycopg already, and taking it away would only break it."""
    assert guarded({}, when="late") == {"left_out": [], "psycopg": True, "redis": True}
