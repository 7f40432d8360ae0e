"""The real worker as a subprocess, and the small tools its tests wait and look with."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1,
             what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class WorkerProcess:
    """``accu-ingest run`` as a real subprocess on its own inbox and data folder."""

    def __init__(self, root: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.inbox = root / "inbox"
        self.data = root / "data"
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.extra = list(extra)
        self.env = {**os.environ, **(env or {})}
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "worker.log"

    def cli(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "worker", *args, "--inbox", str(self.inbox),
               "--data-dir", str(self.data)]
        return subprocess.run(cmd, capture_output=True, text=True, env=self.env, check=check,
                              timeout=120)

    def start(self, *extra: str) -> WorkerProcess:
        cmd = [sys.executable, "-m", "worker", "run", "--inbox", str(self.inbox), "--data-dir",
               str(self.data), "--port", str(self.port), *self.extra, *extra]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        wait_for(self.alive, timeout=30, what="worker /livez")
        wait_for(self.consuming, timeout=30, what="worker's consumer processes ready")
        return self

    def consuming(self) -> bool:
        """Its consumer processes (if any) are up and said they are ready."""
        children = self.status()["consumer_processes"]
        return children is None or children["ready"] == children["processes"]

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"worker exited with {self.proc.returncode}:\n"
                                 f"{self.log.read_text(errors='replace')[-4000:]}")
        try:
            return self.get("/livez")[0] == 200
        except OSError:
            return False

    def metric(self, name: str) -> float:
        """The value of the unlabelled sample ``name`` on /metrics."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        raise AssertionError(f"{name} not in /metrics")

    def status(self) -> dict[str, Any]:
        return self.get("/status")[1]

    def wait_final(self, n: int, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until n files are in a final state and nothing is left in the backlog."""
        def done() -> dict[str, Any] | None:
            s = self.status()
            final = (s["files"]["ingested"] + s["files"]["rejected"]
                     + s["files"].get("context", 0))
            return s if final >= n and s["backlog"] == 0 else None
        return wait_for(done, timeout=timeout, what=f"{n} files final")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=timeout)
        code = self.proc.returncode
        self.proc = None
        return code


def write_config(root: Path, **settings: Any) -> Path:
    """A TOML config with test-friendly timings (short stability window, fast reconcile)."""
    values = {"stable_seconds": 0.5, "rescan_seconds": 2.0, "reconcile_seconds": 1.0,
              "lease_seconds": 20.0, **settings}
    lines = []
    for key, value in values.items():
        lines.append(f"{key} = {json.dumps(value)}")
    path = root / "accu-ingest.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


# Tests run as root, and root reads and writes any file. The worker runs as root still (it owns
# every file of the test) but without the capabilities that let root pass permission checks, so
# a file of mode 000 (or a folder of mode 555) is as closed to it as to any other user.
NO_OVERRIDE = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
               "--bounding-set=-dac_override,-dac_read_search"]


class UnprivilegedWorker(WorkerProcess):
    """The worker without root's permission override (see NO_OVERRIDE)."""

    def start(self, *extra: str) -> WorkerProcess:
        cmd = [*NO_OVERRIDE, sys.executable, "-m", "worker", "run", "--inbox", str(self.inbox),
               "--data-dir", str(self.data), "--port", str(self.port), *self.extra, *extra]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        wait_for(self.alive, timeout=30, what="worker /livez")
        wait_for(self.consuming, timeout=30, what="worker's consumer processes ready")
        return self


def can_drop_override(tmp_path: Path) -> bool:
    """Can a process here be kept from reading a file of mode 000 (NO_OVERRIDE)?"""
    probe = tmp_path / "probe"
    probe.write_bytes(b"x")
    probe.chmod(0)
    try:
        if shutil.which("setpriv") is None:
            return False
        done = subprocess.run([*NO_OVERRIDE, "cat", str(probe)], capture_output=True)
        return done.returncode != 0 and b"Permission denied" in done.stderr
    finally:
        probe.unlink()
