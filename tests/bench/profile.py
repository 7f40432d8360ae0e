"""Sampling the worker with py-spy during a burst, and naming where its time goes.

py-spy attaches to the running worker from outside (no code change, little overhead) and writes
collapsed stacks: ``outer (file:line);…;inner (file:line) <samples>``, idle threads left out.
The summary counts, per frame, the samples where it is the innermost frame (self) and those
where it is anywhere on the stack (inclusive), as a share of all samples.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ATTACH_SECONDS = 1.0


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise FileNotFoundError("py-spy is not installed: pip install py-spy")
    return found


@contextmanager
def recording(pid: int, output: Path, rate: int = 100) -> Iterator[None]:
    """py-spy records ``pid`` and its consumer processes for the duration of the block (the
    samples of all of them, summed: most of the parsing and writing is in the children)."""
    proc = subprocess.Popen([py_spy(), "record", "--pid", str(pid), "--format", "raw",
                             "--output", str(output), "--rate", str(rate), "--nonblocking",
                             "--subprocesses"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(ATTACH_SECONDS)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        if not output.exists():
            raise RuntimeError(f"py-spy wrote no profile: {err.decode(errors='replace')[-1000:]}")


def summary(raw: Path, top: int = 15) -> list[str]:
    """The frames with the most self and inclusive samples, as lines of text."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return ["no samples (was the worker busy?)"]
    lines = [f"py-spy: {total} samples of the worker and its consumer processes during the burst"
             f" ({raw})", "",
             f"top {top} by self time (innermost frame):"]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in own.most_common(top)]
    lines += ["", f"top {top} by inclusive time, worker/ code only:"]
    ours = [(f, n) for f, n in inclusive.most_common() if "(worker/" in f or "/worker/" in f]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in ours[:top]]
    return lines
