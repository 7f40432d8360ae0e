"""The options every command shares, and ``run``/``watch``/``consume``'s own.

Light on purpose: the entry point reads a long-running command's settings with these before
peewee and Huey are imported (see main.py), and every command's parser uses the same ones.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from worker.settings import Settings, load

SERVE = ("run", "watch", "consume")
OPTIONS = ("inbox", "data_dir", "database_url", "queue_url", "queue_secret", "host", "port",
           "workers", "consumer_processes", "node")


def common(parser: argparse.ArgumentParser) -> None:
    """The settings options every command takes."""
    parser.add_argument("--config", type=Path, help="TOML settings file")
    parser.add_argument("--inbox", type=Path, help="folder to watch (default inbox/)")
    parser.add_argument("--data-dir", type=Path, help="database, queue and stores (default data/)")
    parser.add_argument("--database-url", help="sqlite:///… (default) or postgresql://…")
    parser.add_argument("--queue-url", help="sqlite:///… (default), redis://… or postgresql://…")
    parser.add_argument("--queue-secret", help="secret that signs queue payloads")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def add_serve_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``run``, ``watch`` and ``consume``."""
    for name, text in (("run", "watch the inbox, consume and serve status (the lab PC)"),
                       ("watch", "watch the inbox and enqueue only (scale-out)"),
                       ("consume", "consume the queue only (scale-out)")):
        p = sub.add_parser(name, help=text)
        common(p)
        p.add_argument("--host", help="status endpoint address (default 127.0.0.1)")
        p.add_argument("--port", type=int, help="status endpoint port (default 8008)")
        if name != "watch":
            p.add_argument("--workers", type=int, help="consumer threads (per process)")
        if name == "run":
            p.add_argument("--consumer-processes", type=int,
                           help="consumer processes beside this one (default 2; 0 = consumer "
                                "threads in this process)")
        if name != "consume":
            p.add_argument("--node", help="this watcher's name, the origin of its files "
                                          "(default: the host name)")


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings a parsed command line asks for (options not given are left to the other
    layers)."""
    return load(args.config, **{k: getattr(args, k, None) for k in OPTIONS})
