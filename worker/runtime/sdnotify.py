"""systemd's notify protocol, written out: one datagram per message to ``$NOTIFY_SOCKET``.

With ``Type=notify`` systemd waits for ``READY=1`` before it calls the service started, expects
``WATCHDOG=1`` at least every ``WatchdogSec`` (it passes that as ``$WATCHDOG_USEC``; we ping at
half of it), shows ``STATUS=`` in ``systemctl status``, and while a graceful stop runs, each
``EXTEND_TIMEOUT_USEC=`` moves its stop deadline out. Outside systemd (no ``NOTIFY_SOCKET``)
and on Windows every call does nothing. No dependency: the protocol is a few lines.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Send one notification; False when not under systemd or the socket cannot be reached."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or os.name == "nt" or not hasattr(socket, "AF_UNIX"):
        return False
    if address.startswith("@"):  # an abstract socket name
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError as exc:
        log.warning("cannot notify systemd at %s: %s", address.lstrip("\0"), exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when none is asked for."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 1e6 / 2, 0.05)
    except ValueError:
        return None


class Watchdog:
    """Pings systemd's watchdog at half its timeout, with a fresh STATUS= line each time.

    While ``stuck`` names a problem (a loop that cannot make progress, as /readyz says) the ping
    is left out, so systemd restarts a process that is alive but does no work.
    """

    def __init__(self, status: Callable[[], str] | None = None,
                 stuck: Callable[[], str | None] | None = None) -> None:
        self.interval = watchdog_interval()
        self.status = status
        self.stuck = stuck
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sd-watchdog", daemon=True)

    def start(self) -> None:
        if self.interval is not None:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        assert self.interval is not None
        while not self._stop.wait(self.interval):
            problem = self.stuck() if self.stuck is not None else None
            lines = [] if problem else ["WATCHDOG=1"]
            if problem:
                lines.append(f"STATUS=not progressing: {problem}")
            elif self.status is not None:
                try:
                    lines.append("STATUS=" + self.status())
                except Exception as exc:  # a status that cannot be read is itself news
                    lines.append(f"STATUS=status unavailable: {exc}")
            if lines:
                notify("\n".join(lines))


EXTEND_EVERY = 10.0  # seconds between EXTEND_TIMEOUT_USEC messages during a stop
EXTEND_BY = 3 * EXTEND_EVERY  # each asks for this much more: two may be lost in a busy moment


@contextlib.contextmanager
def extending(what: str) -> Iterator[None]:
    """While a graceful stop runs (files in flight finishing), keep asking systemd for more
    time, so TimeoutStopSec bounds a stop that hangs rather than one that works."""
    if not os.environ.get("NOTIFY_SOCKET"):
        yield
        return
    done = threading.Event()

    def extend() -> None:
        while True:
            notify(f"EXTEND_TIMEOUT_USEC={int(EXTEND_BY * 1e6)}\nSTATUS=stopping: {what}")
            if done.wait(EXTEND_EVERY):
                return

    thread = threading.Thread(target=extend, name="sd-extend", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)
