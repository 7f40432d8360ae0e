"""Many instrument PCs, one database — against the real PostgreSQL and Redis here.

Every test gets a fresh PostgreSQL database and a queue name of its own (support.servers),
so runs never see each other's rows or tasks. Watchers and consumers are real ``accu-ingest
watch`` / ``consume`` processes, each in its own folder: nothing is shared but the servers.
Skipped with the reason when the servers do not answer; a failure under CI=true.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support.cluster import (
    Backends,
    Cluster,
    Node,
    assert_clean,
    bind,
    check_exactly_once,
    cli,
    owner_pid,
    scheduler_owner,
    spread,
)
from support.drops import Tally, plan, put
from support.servers import REDIS_SERVER, fresh_postgres
from support.workers import wait_for

pytestmark = pytest.mark.scaleout


# --- schema and start-up ----------------------------------------------------------------------
def test_same_schema_on_sqlite_and_postgresql_with_concurrent_migrations(pg: str,
                                                                         tmp_path: Path) -> None:
    # Six processes start at once on an empty PostgreSQL database: one migrates, none fails.
    code = ("import sys; from worker.record import db; from worker.settings import Settings; "
            "db.open_database(Settings(database_url=sys.argv[1], data_dir=sys.argv[2]))")
    procs = [subprocess.Popen([sys.executable, "-c", code, pg, str(tmp_path)],
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, "\n".join(errors)

    from worker.record import db
    from worker.record.migrations import MIGRATIONS
    from worker.record.models import SchemaVersion
    from worker.settings import Settings

    def schema(database: Any) -> dict[str, set[str]]:
        return {t: {c.name for c in database.get_columns(t)} for t in database.get_tables()}

    postgres = db.open_database(Settings(database_url=pg, data_dir=tmp_path))
    try:
        versions = [v.version for v in SchemaVersion.select().order_by(SchemaVersion.version)]
        on_postgres = schema(postgres)
        float_types = {c.data_type for t in postgres.get_tables()
                       for c in postgres.get_columns(t) if c.name in ("lease_until", "area")}
    finally:
        postgres.close()
    sqlite = db.open_database(Settings(data_dir=tmp_path / "embedded"))
    try:
        on_sqlite = schema(sqlite)
    finally:
        sqlite.close()
    assert versions == [m[0] for m in MIGRATIONS]
    assert on_postgres == on_sqlite
    assert {"source_file", "raw_blob", "audit_event", "lease", "schema_version"} <= set(on_sqlite)
    assert float_types == {"double precision"}  # not float4: leases and areas keep 15 digits


def test_unreachable_servers_stop_startup_naming_the_url_without_password(
        pg: str, queue_name: str, tmp_path: Path) -> None:
    base = Backends(pg, REDIS_SERVER, queue_name)
    common = ["--data-dir", str(tmp_path / "data"), "--port", "0"]
    cases = [
        (Backends("postgresql://postgres:pw-db-9@127.0.0.1:1/lab", REDIS_SERVER, queue_name),
         "cannot connect to database postgresql://postgres:***@127.0.0.1:1/lab"),
        (Backends(pg, "redis://:pw-q-9@127.0.0.1:1/0", queue_name),
         "queue redis://:***@127.0.0.1:1/0 does not answer"),
        (Backends(pg, "postgresql://postgres:pw-q-9@127.0.0.1:1/q", queue_name),
         "cannot open queue postgresql://postgres:***@127.0.0.1:1/q"),
        (Backends(pg, REDIS_SERVER, queue_name, secret=""),
         "set queue_secret"),
    ]
    for backends, expected in cases:
        env = backends.env()
        if not backends.secret:
            env.pop("ACCU_INGEST_QUEUE_SECRET")
        done = subprocess.run([sys.executable, "-m", "worker", "consume", *common],
                              capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 2, done.stderr
        assert expected in done.stderr
        assert "pw-" not in done.stderr + done.stdout
        assert "Traceback" not in done.stderr
    assert cli(base, "status").returncode == 0  # the same servers, correctly named, answer


# --- exactly once across machines -------------------------------------------------------------
@pytest.mark.parametrize("queue", ["redis", "postgresql"])
def test_two_watchers_three_consumers_ingest_a_burst_exactly_once(
        queue: str, pg: str, queue_name: str, tmp_path: Path,
        cluster_root: list[Cluster]) -> None:
    backends = Backends(pg, REDIS_SERVER if queue == "redis" else pg, queue_name)
    cluster = Cluster.build(tmp_path, backends, watchers=2, consumers=3)
    cluster_root.append(cluster)
    cluster.start()
    rng = random.Random(8)
    drops = plan(40, rng, tag=queue[0])
    placed = spread(drops, cluster, rng)
    for node, drop in placed:
        put(node.inbox, drop, rng)
    cluster.wait_quiet(len({d.sha for d in drops}), timeout=90)

    # One scheduler among the five processes, and it stays the same while it lives.
    owner = scheduler_owner(backends, tmp_path)
    assert owner_pid(owner) in {n.pid for n in cluster.nodes}
    time.sleep(1.5)
    assert scheduler_owner(backends, tmp_path) == owner

    assert cluster.stop() == {f"{n.role} {n.name}": 0 for n in cluster.nodes}
    assert_clean(check_exactly_once(cluster, placed, tmp_path))


def test_sigkilled_consumers_and_watcher_lose_and_duplicate_nothing(
        pg: str, queue_name: str, tmp_path: Path, cluster_root: list[Cluster]) -> None:
    tally = fault_run(pg, queue_name, tmp_path, cluster_root, files=48, rounds=3, seed=11)
    assert tally.kills == 3 + 3 + 2  # schedulers, consumers, watchers


@pytest.mark.long
@pytest.mark.parametrize("queue", ["redis", "postgresql"])
def test_long_fault_run(queue: str, pg: str, queue_name: str, tmp_path: Path,
                        cluster_root: list[Cluster]) -> None:
    fault_run(pg, queue_name, tmp_path, cluster_root, files=400, rounds=12, seed=12,
              queue=queue)


def fault_run(pg: str, queue_name: str, root: Path, clusters: list[Cluster], files: int,
              rounds: int, seed: int, queue: str = "redis") -> Tally:
    """Drop files in waves; mid-burst each round SIGKILLs the scheduler lease's holder (and
    waits for another process to take the lease over), a consumer and, every other round, a
    watcher; drops more while they are down, then restarts them."""
    backends = Backends(pg, REDIS_SERVER if queue == "redis" else pg, queue_name)
    started = time.monotonic()
    cluster = Cluster.build(root, backends, watchers=2, consumers=3)
    clusters.append(cluster)
    cluster.start()
    rng = random.Random(seed)
    drops = plan(files, rng, tag=f"f{seed}")
    placed = spread(drops, cluster, rng)
    waves = [placed[i::rounds + 1] for i in range(rounds + 1)]
    kills = 0

    def running_holder() -> Node | None:
        pid = owner_pid(scheduler_owner(backends, root))
        return next((node for node in cluster.nodes if node.running() and node.pid == pid), None)

    for n, wave in enumerate(waves[:-1]):
        up, down = wave[: len(wave) * 2 // 3], wave[len(wave) * 2 // 3:]
        for node, drop in up:
            put(node.inbox, drop, rng)
        time.sleep(rng.uniform(0.2, 1.2))
        holder = wait_for(running_holder, timeout=15, what="a live scheduler")
        holder.stop(signal.SIGKILL)  # the scheduler dies: another process must take over
        wait_for(running_holder, timeout=15, what="another process to take the scheduler lease")
        victims = [holder, rng.choice([c for c in cluster.consumers if c.running()])]
        if n % 2 == 0:
            victims.append(rng.choice([w for w in cluster.watchers if w.running()]))
        for victim in victims[1:]:
            victim.stop(signal.SIGKILL)
        kills += len(victims)
        for node, drop in down:  # dropped while some are down
            put(node.inbox, drop, rng)
        for victim in victims:
            victim.launch()
        for victim in victims:
            victim.wait_up()
    for node, drop in waves[-1]:
        put(node.inbox, drop, rng)
    cluster.wait_quiet(len({d.sha for d in drops}), timeout=120 + files * 0.5)
    assert cluster.stop() == {f"{n.role} {n.name}": 0 for n in cluster.nodes}
    tally = check_exactly_once(cluster, placed, root)
    tally.kills, tally.wall_s = kills, time.monotonic() - started
    assert_clean(tally)
    return tally


# --- signed payloads ------------------------------------------------------------------------
def test_tampered_and_unsigned_payloads_are_refused_audited_and_never_unpickled(
        pg: str, queue_name: str, tmp_path: Path, cluster_root: list[Cluster]) -> None:
    import redis

    from worker.consume.queue import open_queue

    backends = Backends(pg, REDIS_SERVER, queue_name)
    cluster = Cluster.build(tmp_path, backends, watchers=1, consumers=1)
    cluster_root.append(cluster)
    cluster.start()

    marker = tmp_path / "unpickled"  # created only if a payload were ever unpickled
    evil = pickle.dumps(_MakesDirectory(str(marker)))
    queue = open_queue(backends.settings(data_dir=tmp_path / "enqueuer"))
    signed = queue.huey.serialize_task(queue.ingest.s(1))
    _, signature = signed.rsplit(b":", 1)
    client = redis.Redis.from_url(REDIS_SERVER)
    key = f"huey.redis.{queue_name}"
    client.lpush(key, evil)  # unsigned
    client.lpush(key, evil + b":" + signature)  # a real signature over other bytes

    def rejections() -> list[dict[str, Any]]:
        from worker.record.models import AuditEvent
        database = bind(backends, tmp_path)
        try:
            return [json.loads(e.details) for e in AuditEvent.select().where(
                AuditEvent.event == "payload_rejected").order_by(AuditEvent.seq)]
        finally:
            database.close()

    seen = wait_for(lambda: len(rejections()) == 2 and rejections(), timeout=20,
                    what="two payload_rejected audit events")
    by_reason = {r["reason"].split(":")[0]: r for r in seen}  # two threads: either order
    assert sorted(by_reason) == ["bad signature", "unsigned"]
    assert by_reason["unsigned"]["size"] == len(evil)
    assert by_reason["unsigned"]["head"] == evil[:48].hex()
    assert not marker.exists()

    # The consumer keeps working: a file dropped now is ingested.
    rng = random.Random(4)
    good = next(d for d in plan(8, rng, tag="s") if d.peaks is not None)
    put(cluster.watchers[0].inbox, good, rng)
    status = cluster.wait_quiet(1, timeout=30)
    assert status["files"]["ingested"] == 1
    assert client.llen(key) == 0
    assert cluster.stop() == {f"{n.role} {n.name}": 0 for n in cluster.nodes}
    assert cli(backends, "audit", "verify", "--data-dir",
               str(cluster.consumers[0].data)).returncode == 0


class _MakesDirectory:
    """Unpickling this creates a directory: the proof that a payload was never unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (self.path,)


# --- the audit chain and the scheduler lease under concurrency ------------------------------
APPENDER = """
import sys
from worker.record import audit
from worker.record import db
from worker.record.models import database
from worker.settings import Settings
db.open_database(Settings(database_url=sys.argv[1], data_dir=sys.argv[2]))
for i in range(int(sys.argv[3])):
    with database.atomic():
        audit.record("load_test", n=i)
"""


@pytest.mark.parametrize("engine", ["postgresql", "sqlite"])
def test_audit_chain_stays_one_verifiable_chain_under_concurrent_appends(
        engine: str, servers: None, tmp_path: Path) -> None:
    from worker.record import audit, db
    from worker.record.models import AuditEvent
    from worker.settings import Settings

    server = fresh_postgres() if engine == "postgresql" else contextlib.nullcontext("")
    with server as pg:
        url = pg or f"sqlite:///{tmp_path / 'audit.db'}"
        settings = Settings(database_url=url, data_dir=tmp_path)
        db.open_database(settings).close()  # migrated once, so all start appending together
        procs = [subprocess.Popen([sys.executable, "-c", APPENDER, url, str(tmp_path), "120"],
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, "\n".join(errors)
        database = db.open_database(settings)
        try:
            report = audit.verify()
            loads = list(AuditEvent.select(AuditEvent.pid).where(AuditEvent.event == "load_test"))
            keyed = AuditEvent.select().where(AuditEvent.event == audit.KEYED).count()
        finally:
            database.close()
    assert report.ok, report.problem
    assert len(loads) == 480 and {e.pid for e in loads} == {p.pid for p in procs}
    assert keyed == 1 and report.events == 481  # the first appender keyed the trail


LEASE_HAMMER = """
import json, random, sys, time
from worker.record import db
from worker.consume.reconcile import hold_lease
from worker.record.db import database_now
from worker.settings import Settings
db.open_database(Settings(database_url=sys.argv[1], data_dir=sys.argv[2]))
me, held, rng = sys.argv[3], [], random.Random(sys.argv[3])
end = time.time() + 3.0
while time.time() < end:
    before = database_now()
    if hold_lease("hammer", me, 0.3):
        held.append((before, database_now()))
        if rng.random() < 0.15:
            time.sleep(0.45)  # hangs past its lease: another process may take over
    time.sleep(0.01)
print(json.dumps(held))
"""


def test_scheduler_lease_has_one_holder_at_a_time(pg: str, tmp_path: Path) -> None:
    from worker.record import db
    from worker.settings import Settings

    db.open_database(Settings(database_url=pg, data_dir=tmp_path)).close()
    procs = [subprocess.Popen([sys.executable, "-c", LEASE_HAMMER, pg, str(tmp_path), f"p{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(4)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(err for _, err in outputs)
    held = {f"p{i}": json.loads(out) for i, (out, _) in enumerate(outputs)}
    # A success at database time t (somewhere in [before, after]) holds until t + 0.3 s; two
    # owners' holds overlap for sure when neither can have begun after the other's ended.
    overlaps = [(a, b) for a, spans in held.items() for b, others in held.items() if a < b
                for (a0, a1) in spans for (b0, b1) in others
                if b1 < a0 + 0.3 and a1 < b0 + 0.3]
    assert overlaps == []
    assert sum(1 for spans in held.values() if spans) >= 2  # the lease did change hands
