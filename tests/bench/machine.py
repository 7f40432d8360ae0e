"""The machine a run was made on: figures mean little without it."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def details(workdir: Path) -> dict[str, str]:
    return {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "ram": _ram(),
        "disk": _filesystem(workdir),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": _sqlite(),
        "os": platform.platform(),
        "commit": _commit(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "n/a"


def _ram() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1048576:.1f} GiB"
    except OSError:
        pass
    return "n/a"


def _filesystem(path: Path) -> str:
    """Filesystem type and device of the mount holding ``path`` (longest matching mount point)."""
    try:
        mounts = [line.split()[:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "n/a"
    resolved = str(path.resolve())
    holding = [m for m in mounts
               if resolved == m[1] or resolved.startswith(m[1].rstrip("/") + "/")]
    best = max(holding, key=lambda m: len(m[1]), default=None)
    return f"{best[2]} on {best[0]} ({best[1]})" if best else "n/a"


def _sqlite() -> str:
    import sqlite3
    return sqlite3.sqlite_version


def _commit() -> str:
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "worker"], cwd=root,
                               text=True, capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "n/a"
    return f"{head}{' + uncommitted worker/ changes' if dirty else ''}"
