"""Huey's consumer as the worker runs it: in ``run`` or ``consume``, or in a child of ``run``.

It owns the main thread and its signals: SIGINT or SIGTERM stop it gracefully — in-flight files
finish (or, if cut short past the shutdown timeout, are re-queued by their lease).
"""

from __future__ import annotations

import signal
from collections.abc import Callable

from huey.consumer import Consumer

from worker.consume.queue import Queue
from worker.runtime import memory, sdnotify
from worker.settings import Settings

SHUTDOWN_TIMEOUT = 60  # seconds files in flight get to finish at a graceful stop


class _Consumer(Consumer):  # type: ignore[misc]
    """Huey's consumer, saying when its threads run and keeping systemd waiting while the
    files in flight finish at a graceful stop."""

    started: Callable[[], None] | None = None

    def start(self) -> None:
        super().start()
        if self.started is not None:
            self.started()

    def stop(self, graceful: bool = False) -> None:
        with sdnotify.extending("finishing files in flight"):
            super().stop(graceful)


def consume(settings: Settings, queue: Queue, restart_on_hangup: bool = True,
            started: Callable[[], None] | None = None) -> None:
    """Run ``settings.workers`` consumer threads until SIGINT/SIGTERM; ``started`` is called
    once they run.

    Huey restarts on SIGHUP by running its command line again; a child of ``run`` got its
    settings on stdin, not on its command line, so it lets SIGHUP end it (and is started again).
    """
    consumer = _Consumer(queue.huey, workers=settings.workers, worker_type="thread",
                        # An idle worker polls the queue every 0.1 s at most: a single
                        # drop must show up at once, and a poll is one indexed query.
                        periodic=False, initial_delay=0.05, max_delay=0.1,
                        backoff=1.5, graceful_signal="TERM", shutdown_timeout=SHUTDOWN_TIMEOUT)
    # SIGINT (Ctrl-C) is as graceful as SIGTERM: in-flight files finish first.
    consumer._signal_actions[signal.SIGINT] = (False, True)
    if not restart_on_hangup and hasattr(signal, "SIGHUP"):
        del consumer._signal_actions[signal.SIGHUP]
    consumer.started = started
    consumer.run()


def ingest_work(settings: Settings) -> Callable[[list[int]], None]:
    """The ingest task's body for a consuming process. The pipeline is imported only here,
    and here rather than in roles.py, so a consumer child does not hold the status endpoint,
    views and deliveries it never runs. Its parsers load now, before the process says it is
    ready: loaded by the first file, they held up a burst's first chunk in every consumer."""
    from worker.consume import ingest
    from worker.parsers import registered

    registered()

    def work(file_ids: list[int]) -> None:
        try:
            ingest.process_many(settings, file_ids)
        finally:  # the chunk's rows and models are garbage now: their pages go back
            memory.release()

    return work
