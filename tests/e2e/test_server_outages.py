"""The servers go away under a running installation: PostgreSQL (through a TCP proxy that resets
every connection and refuses new ones), Redis (a private server killed and started again empty),
a consumer on another machine (SIGKILL), the scheduler (SIGKILL and restart at once). Afterwards
everything finishes by itself, exactly once, and /readyz says 503 while a process cannot make
progress and 200 once it can.

The machine's own PostgreSQL is never restarted: only the proxy in front of it breaks.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from support.cluster import Backends, Cluster, Node, assert_clean, bind, check_exactly_once, spread
from support.corpus import IN_CI
from support.drops import plan, put
from support.servers import REDIS_SERVER
from support.workers import free_port, wait_for

pytestmark = pytest.mark.scaleout

SLOW_LEASE = {"lease_seconds": 120.0}  # files must not wait for their leases to run out


class Proxy:
    """A TCP proxy on 127.0.0.1 in front of ``target``. ``cut`` resets every connection through
    it and refuses new ones, as a server restart or a failover does; ``restore`` accepts again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        return parts._replace(netloc=parts.netloc.replace(
            f"{parts.hostname}:{parts.port}", f"127.0.0.1:{self.port}")).geturl()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(256)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            self._listener.close()
            self._listener = None
        with self._lock:
            victims, self._open = list(self._open), set()
        for sock in victims:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RD)  # wakes its pipe thread
            sock.close()  # with linger 0: a reset, to the client and to the server

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._open |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open -= {src, dst}
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


def readyz(node: Node) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{node.port}/readyz", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def stuck_loops(node: Node) -> str | None:
    """What /readyz says of the node's loops while it answers 503, else None."""
    with contextlib.suppress(OSError):
        code, body = readyz(node)
        if code == 503 and body["failed"].get("loops"):
            return str(body["failed"]["loops"])
    return None


def all_ready(cluster: Cluster) -> bool:
    return all(readyz(node)[0] == 200 for node in cluster.nodes)


@pytest.fixture
def proxied_pg(pg: str) -> Iterator[tuple[str, Proxy]]:
    """A fresh database reached through a proxy of its own: (URL through the proxy, proxy)."""
    parts = urlsplit(pg)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    proxy.restore()
    yield proxy.url(pg), proxy
    proxy.cut()


class Burst:
    """Files spread over the watchers' inboxes, dropped in two waves: one before the outage,
    one while the server is away."""

    def __init__(self, cluster: Cluster, files: int, seed: int) -> None:
        self.rng = random.Random(seed)
        drops = plan(files, self.rng, tag=f"o{seed}")
        self.placed = spread(drops, cluster, self.rng)
        self.distinct = len({d.sha for d in drops})
        self._waves = [self.placed[: files * 2 // 3], self.placed[files * 2 // 3:]]

    def drop_wave(self) -> None:
        for node, drop in self._waves.pop(0):
            put(node.inbox, drop, self.rng)


def in_flight(direct_url: str, tmp: Path) -> int:
    """Files held by a consumer, read straight from the server (not through the proxy)."""
    from worker.record.models import PROCESSING, SourceFile
    database = bind(Backends(direct_url, REDIS_SERVER, "none"), tmp)
    try:
        return int(SourceFile.select().where(SourceFile.state == PROCESSING).count())
    finally:
        database.close()


# --- PostgreSQL goes away mid-burst -------------------------------------------------------------
def test_postgres_outage_mid_burst_every_loop_reconnects_and_finishes_exactly_once(
        pg: str, proxied_pg: tuple[str, Proxy], queue_name: str, tmp_path: Path,
        cluster_root: list[Cluster]) -> None:
    url, proxy = proxied_pg
    backends = Backends(url, url, queue_name)  # ledger and queue both on the PostgreSQL
    cluster = Cluster.build(tmp_path, backends, watchers=1, consumers=2, **SLOW_LEASE)
    cluster_root.append(cluster)
    cluster.start()
    burst = Burst(cluster, 240, seed=21)
    burst.drop_wave()
    # Mid-burst: files held by consumers, others registered or still in the inbox.
    wait_for(lambda: in_flight(pg, tmp_path), timeout=30, interval=0.02, what="files in flight")
    proxy.cut()
    cut_at = time.monotonic()
    try:
        burst.drop_wave()
        # Each process names its loops that cannot reach the database.
        for node in cluster.nodes:
            why = wait_for(lambda n=node: stuck_loops(n), timeout=15,  # type: ignore[misc]
                           what=f"{node.role} {node.name} /readyz naming a stuck loop")
            assert "database" in why or "queue" in why, why
        time.sleep(max(0.0, 15 - (time.monotonic() - cut_at)))  # away for 15 s at least
    finally:
        proxy.restore()
    back = time.monotonic()
    # Back: everything finishes by itself, long before any lease (120 s) runs out.
    cluster.wait_quiet(burst.distinct, timeout=45)
    print(f"all final {time.monotonic() - back:.1f} s after PostgreSQL returned")
    wait_for(lambda: all_ready(cluster), timeout=20, what="every process ready again")
    assert cluster.stop() == {f"{n.role} {n.name}": 0 for n in cluster.nodes}
    assert_clean(check_exactly_once(cluster, burst.placed, tmp_path))


# --- Redis killed and started again empty -------------------------------------------------------
@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A redis-server of the test's own on a free port: (URL, restart(kill_first) function)."""
    import shutil
    exe = shutil.which("redis-server")
    if exe is None:
        if IN_CI:
            pytest.fail("CI needs redis-server on the PATH")
        pytest.skip("redis-server is not installed")
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        procs.append(subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        import redis
        wait_for(lambda: _pings(redis.Redis(port=port)), timeout=10, what="redis-server")

    def kill() -> None:
        procs[-1].send_signal(signal.SIGKILL)
        procs[-1].wait(timeout=10)

    start()
    yield f"redis://127.0.0.1:{port}/0", (kill, start)
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _pings(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


def test_redis_killed_and_restarted_empty_loses_nothing_and_readiness_names_the_queue(
        pg: str, private_redis: tuple[str, Any], tmp_path: Path,
        cluster_root: list[Cluster]) -> None:
    url, (kill, start) = private_redis
    backends = Backends(pg, url, "outage")
    cluster = Cluster.build(tmp_path, backends, watchers=1, consumers=2, **SLOW_LEASE)
    cluster_root.append(cluster)
    cluster.start()
    burst = Burst(cluster, 150, seed=22)
    burst.drop_wave()
    wait_for(lambda: in_flight(pg, tmp_path), timeout=30, interval=0.02, what="files in flight")
    kill()  # with every task in it: the ledger is the truth
    try:
        burst.drop_wave()
        for node in cluster.consumers:
            why = wait_for(lambda n=node: stuck_loops(n), timeout=15,  # type: ignore[misc]
                           what=f"consumer {node.name} /readyz naming its queue")
            assert "queue" in why, why
        time.sleep(3)
    finally:
        start()
    back = time.monotonic()
    cluster.wait_quiet(burst.distinct, timeout=45)
    print(f"all final {time.monotonic() - back:.1f} s after Redis returned")
    wait_for(lambda: all_ready(cluster), timeout=20, what="every process ready again")
    assert cluster.stop() == {f"{n.role} {n.name}": 0 for n in cluster.nodes}
    assert_clean(check_exactly_once(cluster, burst.placed, tmp_path))


# --- a consumer on another machine dies ---------------------------------------------------------
class ElsewhereNode(Node):
    """A ``consume`` process with a host name of its own (a UTS namespace): another machine, as
    far as lease owners and pid checks go."""

    def command(self) -> list[str]:
        return ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"',
                f"elsewhere-{self.name}", *super().command()]


def test_a_dead_consumer_on_another_machine_is_noticed_by_its_heartbeat(
        pg: str, queue_name: str, tmp_path: Path, cluster_root: list[Cluster]) -> None:
    if subprocess.run(["unshare", "--uts", "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot make a UTS namespace here (needs root)")
    from worker.record.models import PROCESSING, SourceFile

    backends = Backends(pg, REDIS_SERVER, queue_name)
    cluster = Cluster.build(tmp_path, backends, watchers=1, consumers=0, **SLOW_LEASE)
    far = ElsewhereNode(tmp_path / "far", "consume", backends, "far", workers=1,
                        config=SLOW_LEASE)
    cluster.consumers = [far]
    cluster_root.append(cluster)
    cluster.start()
    database = bind(backends, tmp_path)
    try:
        def held_far() -> int:
            return SourceFile.select().where(SourceFile.state == PROCESSING,
                                             SourceFile.lease_owner.startswith("elsewhere-")
                                             ).count()

        burst = Burst(cluster, 120, seed=23)
        burst.drop_wave()
        burst.drop_wave()
        wait_for(held_far, timeout=30, interval=0.02, what="files held by the far consumer")
        far.stop(signal.SIGKILL)
        killed = time.monotonic()
        assert held_far() > 0  # its files are in flight, their leases good for 120 s
        near = Node(tmp_path / "near", "consume", backends, "near", config=SLOW_LEASE).start()
        cluster.consumers.append(near)
        # Its heartbeat is stale after 15 s: the reconciler hands its files to the near one.
        cluster.wait_quiet(burst.distinct, timeout=60)
        print(f"all final {time.monotonic() - killed:.1f} s after the far consumer died")
    finally:
        database.close()
    cluster.consumers = [near]  # the far one was killed
    assert cluster.stop() == {f"{n.role} {n.name}": 0 for n in cluster.nodes}
    assert_clean(check_exactly_once(cluster, burst.placed, tmp_path))
