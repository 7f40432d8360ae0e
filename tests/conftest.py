"""pytest's hooks and the fixtures every folder shares; the helpers themselves are in support/."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.cluster import Cluster
from support.corpus import corpus_dir
from support.pipeline import Pipeline
from support.servers import fresh_postgres, fresh_queue_name, require_servers
from support.workers import WorkerProcess, write_config


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true",
                     help="run the long opt-in runs (fault injection at scale, fuzzing)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--long"):
        return
    skip = pytest.mark.skip(reason="long run: opt in with --long")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def corpus() -> Path:
    return corpus_dir()


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[WorkerProcess]:
    w = WorkerProcess(tmp_path, "--config", str(write_config(tmp_path)))
    yield w
    if w.proc is not None and w.proc.poll() is None:
        w.stop(signal.SIGKILL)


@pytest.fixture
def open_db(tmp_path: Path) -> Iterator[Callable[[Path], None]]:
    """Open a worker's SQLite database in the test process, read side by side with it."""
    from worker.record import db
    from worker.settings import Settings

    opened = []

    def _open(data_dir: Path) -> None:
        database = db.open_database(Settings(data_dir=data_dir, inbox=tmp_path / "inbox"))
        opened.append(database)

    yield _open
    for database in opened:
        database.close()


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    """The path of a file in this process (support.pipeline) on a fresh SQLite installation."""
    p = Pipeline.open(tmp_path)
    yield p
    p.close()


# --- the shared PostgreSQL and Redis: a private database and queue name per test ------------
@pytest.fixture(scope="module")
def servers() -> None:
    """Skips the test when the servers do not answer (with the reason); fails it under CI."""
    require_servers()


@pytest.fixture
def pg(servers: None) -> Iterator[str]:
    with fresh_postgres() as url:
        yield url


@pytest.fixture
def queue_name(servers: None) -> Iterator[str]:
    with fresh_queue_name() as name:
        yield name


@pytest.fixture
def cluster_root() -> Iterator[list[Cluster]]:
    """Clusters started by a test; any process still running at the end is killed."""
    made: list[Cluster] = []
    yield made
    for cluster in made:
        cluster.kill_all()
