"""The systemd unit and the notify protocol, received on a real unix datagram socket from
a real worker process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.workers import WorkerProcess, write_config

from worker.record import heartbeat
from worker.runtime import health, sdnotify

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no unix sockets here")


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    # A short folder: a unix socket path must fit in about 100 bytes, tmp_path may not.
    folder = tempfile.mkdtemp(prefix="sdn-")
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    yield sock, path
    sock.close()
    shutil.rmtree(folder)


def receive(sock: socket.socket, until: float) -> list[str]:
    messages = []
    while time.monotonic() < until:
        try:
            messages.append(sock.recv(4096).decode())
        except TimeoutError:
            continue
    return messages


def test_worker_says_ready_once_its_consumers_are_pings_and_asks_time_to_stop(
        tmp_path: Path, notify_socket: tuple[socket.socket, str]) -> None:
    """READY=1 came as soon as the parent's parts ran, while its consumer processes were still
    starting: systemd called the service started before it could ingest anything."""
    sock, path = notify_socket
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}  # a ping every 0.2 s
    worker = WorkerProcess(tmp_path, "--config", str(write_config(tmp_path)), env=env)
    worker.start()
    got = receive(sock, time.monotonic() + 1.5)
    while not any(m.startswith("WATCHDOG") for m in got):  # a slow machine: consumers starting
        more = receive(sock, time.monotonic() + 1.0)
        assert more, got
        got += more
    assert worker.stop(signal.SIGTERM) == 0
    got += receive(sock, time.monotonic() + 0.5)

    kinds = [m.splitlines()[0].split("=")[0] for m in got]
    assert kinds[0] == "STATUS" and "starting run" in got[0]
    ready = kinds.index("READY")
    assert set(kinds[1:ready]) <= {"STATUS"}
    assert "STATUS=run: inbox" in got[ready] and "consumer processes 2/2 ready" in got[ready]
    stopping = kinds.index("STOPPING")
    assert set(kinds[ready + 1:stopping]) == {"WATCHDOG"} and stopping - ready > 3
    assert all("STATUS=" in m and "observer ok" in m for m in got[ready + 1:stopping])
    assert "EXTEND_TIMEOUT_USEC" in kinds[stopping + 1:]


def test_the_watchdog_is_withheld_while_a_consumer_hangs_on_one_batch(
        notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A consumer thread stuck in one file (a parser that never returns) is neither failing
    nor idle: the watchdog kept being pinged and systemd never restarted it."""
    sock, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    beat = heartbeat.loop("consumer test-hung", stall_after=None)
    watchdog = sdnotify.Watchdog(stuck=lambda: health.loops_problem())
    watchdog.start()
    try:
        assert "WATCHDOG=1" in receive(sock, time.monotonic() + 0.4)
        beat.busy(0.2)
        time.sleep(0.5)
        receive(sock, time.monotonic() + 0.05)  # what was sent before it counted as hung
        hung = receive(sock, time.monotonic() + 0.5)
        assert hung and not any("WATCHDOG=1" in m for m in hung)
        assert "one pass has run for" in hung[-1]
        beat.ok()
        assert any("WATCHDOG=1" in m for m in receive(sock, time.monotonic() + 0.4))
    finally:
        watchdog.stop()
        heartbeat.forget("consumer test-hung")


def test_abstract_socket_name_and_no_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"accu-ingest-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.notify("READY=1")
        assert sock.recv(100) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert sdnotify.notify("READY=1") is False
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert sdnotify.watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert sdnotify.watchdog_interval() is None


def install(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    config = write_config(tmp_path)
    return subprocess.run([sys.executable, "-m", "worker", "service", "install", "--config",
                           str(config), *extra], capture_output=True, text=True, timeout=60)


def test_service_install_writes_a_hardened_unit_that_systemd_accepts(tmp_path: Path) -> None:
    """The unit ran as root with the whole file system writable, and no account was made."""
    units = tmp_path / "units"
    done = install(tmp_path, "--unit-dir", str(units), "--user-account", "lab-ingest")
    assert done.returncode == 0, done.stderr
    unit = units / "accu-ingest.service"
    text = unit.read_text()
    for line in ("Type=notify", "WatchdogSec=60", "Restart=on-failure", "KillSignal=SIGTERM",
                 "TimeoutStopSec=90", f"WorkingDirectory={tmp_path}",
                 "WantedBy=multi-user.target", "User=lab-ingest", "NoNewPrivileges=yes",
                 "PrivateTmp=yes", "ProtectSystem=strict",
                 f"ReadWritePaths={tmp_path / 'inbox'} {tmp_path / 'data'}"):
        assert line in text.splitlines()
    assert "useradd --system" in done.stdout and " lab-ingest" in done.stdout
    assert f"chown -R lab-ingest:lab-ingest {tmp_path / 'inbox'}" in done.stdout
    assert "lab-ingest:" not in Path("/etc/passwd").read_text()  # printed, not run
    exec_start = next(ln for ln in text.splitlines() if ln.startswith("ExecStart="))
    assert exec_start.endswith(f"run --config {tmp_path / 'accu-ingest.toml'}")
    assert Path(exec_start.split()[0].removeprefix("ExecStart=")).parent == \
        Path(sys.executable).parent
    assert "systemctl enable --now accu-ingest" in done.stdout

    printed = install(tmp_path, "--user", "--print")
    assert printed.returncode == 0 and "WantedBy=default.target" in printed.stdout
    assert "User=" not in printed.stdout  # a user unit runs as its user

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd); the unit was "
                    "written and checked by content only")
    verify = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                            timeout=120)
    complaints = [ln for ln in (verify.stdout + verify.stderr).splitlines()
                  if unit.name in ln or str(unit) in ln]
    assert verify.returncode == 0 and complaints == [], verify.stdout + verify.stderr


def test_service_install_needs_a_config_file(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "worker", "service", "install", "--print"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2 and "needs --config" in done.stderr
