"""The ``accu-ingest`` entry point: ``run``, ``watch`` and ``consume`` read their settings before
peewee and Huey are imported.

peewee and Huey import every database and queue client library installed. A long-running
command's settings are read here first, with nothing heavier than pydantic loaded, so that
drivers.py can leave out the libraries they do not use. The three commands' options are
defined here and cli.py's parser uses them too, so a command line reads the same in both.
Everything else, reporting a bad command line or bad settings included, is cli.py's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from worker import drivers
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


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in SERVE:
        settings = _serve_settings(argv)
        if settings is not None:
            drivers.leave_out_unused(settings)
    from worker import cli  # only now: it imports peewee and Huey

    return cli.main(argv)


class _Unreadable(Exception):
    pass


class _QuietParser(argparse.ArgumentParser):
    """Raises where argparse would print and exit: cli.py reports a bad command line."""

    def error(self, message: str) -> NoReturn:
        raise _Unreadable(message)


def _serve_settings(argv: list[str]) -> Settings | None:
    """The settings of a ``run``, ``watch`` or ``consume`` command line; None when the command
    line or the settings are bad (cli.py reads them again and says what is wrong)."""
    parser = _QuietParser(prog="accu-ingest", add_help=False)
    add_serve_parsers(parser.add_subparsers(dest="command", required=True))
    try:
        return settings_of(parser.parse_args(argv))
    except Exception:  # _Unreadable, SettingsError, an unreadable config file: cli.py meets
        return None  # the same problem again and reports it as it always has
